#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DCROSVM_FUZZ=ON, ASan+UBSan) in build-fuzz/ and runs each
# for a bounded time from its committed seed corpus fuzz/corpus/<name>/ (target <name>_fuzz).
# New coverage inputs accumulate in build-fuzz/corpus/<name>/ (kept between runs, not in git);
# crash, leak, timeout and out-of-memory inputs are written to RESULTS_DIR/<target>-*. Prints
# per target libFuzzer's final "Done N runs" line, writes RESULTS_DIR/fuzz.xml (JUnit, one
# testcase per target) and RESULTS_DIR/fuzz-<target>.log, and exits 1 when a target failed.
#
# Usage: scripts/fuzz.sh [--seconds N] [--targets "a_fuzz b_fuzz"] RESULTS_DIR
#   --seconds N   time per target (default 60; `make fuzz` uses 600)
# Reproduce a crash: build-fuzz/fuzz/<target> RESULTS_DIR/<target>-crash-...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

seconds=60
only=""
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --targets) only=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--seconds N] [--targets LIST] RESULTS_DIR" >&2; exit 2; }
case $seconds in '' | *[!0-9]*) echo "--seconds wants a number" >&2; exit 2 ;; esac
mkdir -p "$1" || exit 2
results=$(cd "$1" && pwd)
say() { echo "== fuzz: $*"; }

targets=()
for dir in fuzz/corpus/*/; do
  t=$(basename "$dir")_fuzz
  if [ -z "$only" ] || [[ " $only " == *" $t "* ]]; then targets+=("$t"); fi
done
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets selected" >&2; exit 2; }

# One JUnit report: testcase NAME STATUS(pass|fail) LOG MESSAGE lines collected, written at the end.
cases=()
write_junit() {
  python3 - "$results/fuzz.xml" "${cases[@]}" <<'EOF'
import sys
import xml.etree.ElementTree as ET
out, rows = sys.argv[1], sys.argv[2:]
suite = ET.Element("testsuite", name="fuzz", tests=str(len(rows) // 4))
failures = 0
for i in range(0, len(rows), 4):
    name, status, log, message = rows[i:i + 4]
    case = ET.SubElement(suite, "testcase", name=name, classname="fuzz", status="run")
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    if status != "pass":
        failures += 1
        ET.SubElement(case, "failure", message=message).text = text[-20000:]
    ET.SubElement(case, "system-out").text = message + "\n" + text[-4000:]
suite.set("failures", str(failures))
ET.ElementTree(suite).write(out, encoding="utf-8", xml_declaration=True)
EOF
}

build_log=$results/fuzz-build.log
say "building ${targets[*]} in build-fuzz/ (clang, ASan+UBSan, libFuzzer)"
if ! command -v clang++ >/dev/null; then
  echo "clang++ not found (scripts/deps.sh installs it)" >"$build_log"
  cases+=(build fail "$build_log" "clang++ not found")
  write_junit
  say "FAILED: clang++ not found"
  exit 1
fi
if ! { cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCROSVM_FUZZ=ON -DCROSVM_BENCH=OFF &&
  ninja -C build-fuzz "${targets[@]}"; } >"$build_log" 2>&1; then
  tail -n 30 "$build_log"
  cases+=(build fail "$build_log" "building the fuzz targets failed")
  write_junit
  say "FAILED: build"
  exit 1
fi

# qcow_fuzz: qemu-img, where present, makes the larger seeds that are not committed.
if [[ " ${targets[*]} " == *" qcow_fuzz "* ]] && command -v qemu-img >/dev/null &&
  [ ! -e build-fuzz/corpus/qcow/v3_512_rc64_full ]; then
  bash fuzz/make_qcow_corpus.sh build-fuzz/corpus/qcow >/dev/null 2>&1 || true
fi

status=0
for t in "${targets[@]}"; do
  name=${t%_fuzz}
  work=build-fuzz/corpus/$name
  log=$results/fuzz-$t.log
  mkdir -p "$work"
  # -timeout: one input may take 10 s at most; -rss_limit_mb: memory of the whole process.
  # -print_final_stats shows exec/s and the peak RSS; leaks fail the run (ASan's detect_leaks).
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    build-fuzz/fuzz/"$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$results/$t-" "$work" "fuzz/corpus/$name" \
    >"$log" 2>&1
  rc=$?
  runs=$(grep -Eo '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1)
  if [ $rc -eq 0 ] && [ -n "$runs" ]; then
    msg="$t: ${runs}(s), $cov"
    cases+=("$t" pass "$log" "$msg")
    say "$msg"
  else
    status=1
    artifacts=""
    for a in "$results/$t-"*; do [ -e "$a" ] && artifacts+="$a "; done
    last=$(grep -Eo 'number_of_executed_units: [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1)
    msg="$t: FAILED (exit $rc) after ${last:-?} runs; inputs: ${artifacts:-none}"
    cases+=("$t" fail "$log" "$msg")
    say "$msg"
    grep -m1 -A30 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' \
      "$log" | head -n 40
  fi
done
write_junit
say "report: $results/fuzz.xml"
exit $status
