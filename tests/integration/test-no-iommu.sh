#!/bin/bash
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
fail "not written yet"
finish
