#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The shell tests' own habits, checked over every tests/**/*.sh (TAP, one line per rule):
- no bare negated command ("! cmd" as a statement): set -e never stops on it, so as a check it cannot fail;
  a check is "if cmd; then fail ...; fi" or one of lib.sh's asserts;
- no hand-written polling loop ("for _ in $(seq N)" or "while" with a sleep in its body): wait_until
  (tests/integration/wait.sh) is the one bounded wait, and says what it waited for when it gives up.
Usage: shell-checks.py SOURCE-ROOT"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
negated = re.compile(r"^\s*!\s")
loop = re.compile(r"^\s*(for\s+\w+\s+in\s+\$\(seq\b|while\b|until\b)")
sleep = re.compile(r"\bsleep\s")
done = re.compile(r"(^|;)\s*done\b")
# Loops with a sleep that wait for nothing in particular, by file.
NOT_POLLING = {
    "tests/integration/wait.sh": "wait_until itself",
    "tests/vm/run-vm.sh": "serves the guest's requests (a reflash) for as long as QEMU runs, under its own bound",
}

bare_negations = []
polling_loops = []
for path in sorted(root.glob("tests/**/*.sh")):
    rel = path.relative_to(root)
    lines = path.read_text(encoding="utf-8").splitlines()
    in_heredoc = None
    for n, line in enumerate(lines, 1):
        if in_heredoc:
            if line.strip() == in_heredoc:
                in_heredoc = None
            continue
        heredoc = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", line)
        if heredoc and "<<<" not in line:
            in_heredoc = heredoc.group(1)
        # A "!" that continues a condition ("if [ ... ] &&" on the line before) is part of it.
        continued = n > 1 and lines[n - 2].rstrip().endswith(("&&", "||", "|", "\\"))
        if negated.search(line) and not continued:
            bare_negations.append(f"{rel}:{n}: {line.strip()}")
        if loop.search(line):
            # The loop's body: up to its "done" (or the same line for a one-line loop).
            body = [line]
            for follow in lines[n:n + 15]:
                if done.search(body[-1]):
                    break
                body.append(follow)
            if any(sleep.search(b) for b in body) and str(rel) not in NOT_POLLING:
                polling_loops.append(f"{rel}:{n}: {line.strip()}")

checks = [
    ("no bare '! cmd' statements (they never fail a set -e script)", bare_negations),
    ("no hand-written polling loops (wait_until is the one bounded wait)", polling_loops),
]
for i, (what, found) in enumerate(checks, 1):
    if found:
        print(f"not ok {i} - {what}")
        for f in found:
            print(f"# {f}")
    else:
        print(f"ok {i} - {what}")
print(f"1..{len(checks)}")
