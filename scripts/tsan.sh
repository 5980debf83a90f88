#!/usr/bin/env bash
# Builds the unit tests that run more than one thread (the virtio worker, transport, queue,
# block and rng tests with MSI-X and irqfd interplay; the PCI/MSI-X tests; the event loop and
# eventfds; serial) with ThreadSanitizer in build-tsan/ (-DCROSVM_TSAN=ON) and runs them under
# CTest, writing a JUnit report to RESULTS_DIR/unit-tsan.xml and the log to unit-tsan.log.
# A data race, lock-order inversion or thread leak fails the test it happens in.
# Usage: scripts/tsan.sh RESULTS_DIR
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
[ $# -eq 1 ] || { echo "usage: $0 RESULTS_DIR" >&2; exit 2; }
mkdir -p "$1" || exit 2
results=$(cd "$1" && pwd)
say() { echo "== tsan: $*"; }
targets=(base_test devices_test pci_test virtio_test)

say "building ${targets[*]} in build-tsan/ (ThreadSanitizer)"
if ! { cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCROSVM_TSAN=ON \
  -DCROSVM_BENCH=OFF && ninja -C build-tsan "${targets[@]}"; } >"$results/tsan-build.log" 2>&1; then
  tail -n 30 "$results/tsan-build.log"
  say "FAILED: build (see $results/tsan-build.log)"
  exit 1
fi
# Only the binaries built above: the others' placeholders ("<name>_NOT_BUILT") are excluded.
# halt_on_error: the first report ends the test binary, so it fails; exitcode 66 marks it.
# The suppressions (each with its reason) cover races on guest RAM, which the guest shares.
supp=$(pwd)/scripts/tsan-suppressions.txt
TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 report_thread_leaks=1 suppressions=$supp" \
  ctest --test-dir build-tsan -L unit -E '_NOT_BUILT$' -j2 --output-on-failure \
  --output-junit "$results/unit-tsan.xml" >"$results/unit-tsan.log" 2>&1
status=$?
tail -n 3 "$results/unit-tsan.log"
if [ $status -ne 0 ]; then
  grep -m3 -A40 'WARNING: ThreadSanitizer' "$results/unit-tsan.log" | head -n 120
fi
exit $status
