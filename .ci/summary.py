#!/usr/bin/env python3
"""Prints 'N passed, N failed, N skipped' over one or more meson testlog.json files (one per build and
test setup CI runs); exits 1 when anything failed. A log that is missing counts as one failure: a run
that never wrote its log did not pass."""
import json
import sys

counts = {"passed": 0, "failed": 0, "skipped": 0}
suite_seconds = {}  # "build: suite" -> (tests, seconds), printed above the count line
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
for key, (tests, seconds) in suite_seconds.items():
    print(f"{key}: {tests} tests, {seconds:.0f} s of test time")
print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
sys.exit(1 if counts["failed"] else 0)
