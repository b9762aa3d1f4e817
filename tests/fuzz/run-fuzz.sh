#!/bin/bash
# Runs one libFuzzer target for a bounded time over its corpus (tests/fuzz/corpus/NAME, read only): new
# inputs go to a directory in the build tree, crashes to the build tree too, so a test run never changes
# the source. Usage: run-fuzz.sh TARGET CORPUS WORKDIR [libFuzzer options...]
set -euo pipefail
target=$1 corpus=$2 work=$3
shift 3
mkdir -p "$work/new" "$work/artifacts"
exec "$target" -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$@" "$work/new" "$corpus"
