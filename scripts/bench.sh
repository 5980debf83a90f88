#!/usr/bin/env bash
# make bench: installs what is missing, builds crosvm, the test guests and the benchmark tools,
# builds the guest kernel (cached), then runs every benchmark row against QEMU and writes
# bench/results.json and bench/RESULTS.md (see bench/run_bench.py). Extra arguments go to
# run_bench.py (e.g. `bash scripts/bench.sh --rows startup exits --quick`).
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

say "running (about 10-15 minutes on the project's 2-core machines)"
exec python3 bench/run_bench.py --build build "$@"
