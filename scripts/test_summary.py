#!/usr/bin/env python3
"""Summarises CTest JUnit reports: counts per report, every skip with its reason, every failure,
and one closing line 'summary: N passed, N failed, N skipped'."""
import re
import sys
import xml.etree.ElementTree as ET


def skip_reason(case):
    out = case.findtext("system-out") or ""
    # GoogleTest prints "<file>:<line>: Skipped" and then the message given to GTEST_SKIP().
    m = re.search(r"Skipped\n(.*?)\n\[  SKIPPED \]", out, re.S)
    if m and m.group(1).strip():
        return " ".join(m.group(1).split())
    skipped = case.find("skipped")
    if skipped is not None and skipped.get("message"):
        return skipped.get("message")
    return "no reason given"


def main(paths):
    total = {"passed": 0, "failed": 0, "skipped": 0}
    skips, failures = [], []
    for path in paths:
        name = path.rsplit("/", 1)[-1].removesuffix(".xml")
        try:
            cases = ET.parse(path).getroot().iter("testcase")
        except (OSError, ET.ParseError) as e:
            print(f"{name:>10}: no report ({e})")
            total["failed"] += 1
            failures.append(f"{name}: the test run produced no report")
            continue
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for case in cases:
            test = case.get("name")
            if case.find("failure") is not None or case.find("error") is not None \
                    or case.get("status") == "fail":
                counts["failed"] += 1
                failures.append(f"{name}: {test}")
            elif case.find("skipped") is not None or case.get("status") in ("notrun", "disabled"):
                counts["skipped"] += 1
                skips.append(f"{name}: {test}: {skip_reason(case)}")
            else:
                counts["passed"] += 1
        print(f"{name:>10}: {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['skipped']} skipped")
        for k in total:
            total[k] += counts[k]
    for s in skips:
        print(f"  SKIPPED {s}")
    for f in failures:
        print(f"  FAILED  {f}")
    print(f"summary: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 1 if total["failed"] or total["passed"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
