#!/usr/bin/env bash
# make bench: installs what is missing, builds crosvm, the test guests and the benchmark tools,
# builds the guest kernel (cached), then runs every benchmark row against QEMU and writes
# bench/results.json and bench/RESULTS.md (see bench/run_bench.py). Extra arguments go to
# run_bench.py (e.g. `bash scripts/bench.sh --rows startup exits --quick`).
#
# Where this host's KVM is emulated (kvm_pvm: no guest user space, every instruction emulated),
# a second set of rows runs inside the nested hardware-KVM host L1 (tests/nested/run-in-l1:
# QEMU's TCG emulating AMD SVM, kvm_amd inside) and is reported as its own table.
#   --no-l1    skip that section
#   --l1-only  run only that section and put it into the existing bench/results.json
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "== make bench: $*"; }
die() {
  echo "== make bench: FAILED: $*" >&2
  exit 1
}

bash scripts/deps.sh || die "installing dependencies"

say "building build/ (RelWithDebInfo, with the benchmarks)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCROSVM_BENCH=ON >/dev/null ||
  die "cmake build/"
ninja -C build crosvm testguests crosvm_micro_bench crosvm_disk_bench || die "ninja build/"

say "guest kernel and initramfs (cached after the first build)"
bash guest/build-kernel.sh >/dev/null || die "guest kernel build"

[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not usable by $(id -un)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing"
command -v strace >/dev/null ||
  say "note: strace is not installed; the system-call counts in RESULTS.md are skipped"

l1=auto
args=()
for a in "$@"; do
  case "$a" in
    --no-l1) l1=no ;;
    --l1-only) l1=only ;;
    *) args+=("$a") ;;
  esac
done
kind="$(bash guest/host-kvm-kind.sh)"
[ "$kind" = emulated ] || [ "$l1" = only ] || l1=no

l1_args=()
if [ "$l1" != no ]; then
  l1_dir="$PWD/build/bench-work/l1"
  rm -rf "$l1_dir" && mkdir -p "$l1_dir"
  bash guest/build-l1.sh >/dev/null || die "building the nested test host L1"
  say "rows inside L1 (host KVM here: $kind; about 10 minutes): log in ${l1_dir#"$PWD"/}/l1.log"
  # 2 vCPUs for L1: the VMM's own threads (crosvm's device workers, QEMU's I/O and RCU
  # threads) then do not take turns with the guest's vCPU on one emulated CPU.
  tests/nested/run-in-l1 -smp 2 -m 3072 --share "$l1_dir" --timeout 2400 -- \
    python3 bench/run_bench.py --build build --in-l1 --out "$l1_dir" \
    >"$l1_dir/l1.log" 2>&1 || say "the L1 section failed (status $?); see $l1_dir/l1.log"
  grep -E '^run-in-l1: L1 up|^bench: row .* FAILED' "$l1_dir/l1.log" || true
  l1_args=(--l1-results "$l1_dir/results.json" --l1-log "$l1_dir/l1.log")
fi
if [ "$l1" = only ]; then
  exec python3 bench/run_bench.py --build build --merge-l1 "${l1_args[@]}" "${args[@]}"
fi

say "running (about 10-15 minutes on the project's 2-core machines)"
exec python3 bench/run_bench.py --build build "${l1_args[@]}" "${args[@]}"
