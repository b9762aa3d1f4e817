#!/usr/bin/env python3
"""Prints 'N passed, N failed, N skipped' over one or more meson testlog.json files (one per build and
test setup CI runs); exits 1 when anything failed. A log that is missing counts as one failure: a run
that never wrote its log did not pass. Each test that did not pass is named just above the count line,
with the end of its output: CI keeps only the tail of what a run printed, and a red run must say why."""
import json
import sys

counts = {"passed": 0, "failed": 0, "skipped": 0}
suite_seconds = {}  # "build: suite" -> (tests, seconds), printed above the count line
failures = []  # (build: test name, result, the last lines of its output)
FAILURE_TAIL_LINES = 25
for path in sys.argv[1:]:
    try:
        log = open(path)
    except OSError as e:
        print(f"{path}: {e.strerror}", file=sys.stderr)
        counts["failed"] += 1
        continue
    with log:
        for line in log:
            line = line.strip()
            if not line:
                continue
            entry = json.loads(line)
            result = entry["result"]
            # "gpupass:vm / reflash" -> suite vm, under the build directory the log is in
            suite = entry["name"].split(":", 1)[-1].split(" / ")[0]
            key = f"{path.split('/meson-logs/')[0]}: {suite}"
            tests, seconds = suite_seconds.get(key, (0, 0.0))
            suite_seconds[key] = (tests + 1, seconds + entry.get("duration", 0.0))
            if result in ("OK", "EXPECTEDFAIL"):
                counts["passed"] += 1
            elif result == "SKIP":
                counts["skipped"] += 1
            else:
                counts["failed"] += 1
                output = (entry.get("stdout") or "").rstrip("\n").split("\n")
                # The TAP lines that failed first (the tail may be only the teardown's log), then the tail.
                failed_checks = [line for line in output if line.startswith(("not ok", "FAIL -"))][:10]
                failures.append((f"{path.split('/meson-logs/')[0]}: {entry['name']}", result,
                                 failed_checks + ["..."] + output[-FAILURE_TAIL_LINES:]))
for key, (tests, seconds) in suite_seconds.items():
    print(f"{key}: {tests} tests, {seconds:.0f} s of test time")
for name, result, tail in failures:
    print(f"--- {result}: {name}; the end of its output:")
    for line in tail:
        print(f"    {line}")
print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
sys.exit(1 if counts["failed"] else 0)
