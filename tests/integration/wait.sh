# shellcheck shell=bash
# Polling, for every shell test (lib.sh sources it; a script that cannot take lib.sh's temporary directory
# and exit trap, such as cluster-host.sh, sources it alone): one bounded wait that says what it waited for,
# and the conditions it polls.

# wait_until [--while PID] SECONDS WHAT COMMAND [ARGS...]: runs COMMAND every 0.05 s until it succeeds
# (returns 0), SECONDS (whole, wall-clock) have passed, or the process PID has exited (returns 1, saying on
# stderr what it waited for and why it stopped). COMMAND runs in this shell: a function, test, or one of
# the conditions below; a condition that reads something anew each time must be a command, not a "$(...)"
# argument (that is evaluated once, before the wait). EPOCHREALTIME's digits are microseconds whatever the
# locale's decimal point.
wait_until() {
        local pid=
        if [ "$1" == --while ]; then
                pid=$2
                shift 2
        fi
        local seconds=$1 what=$2 deadline
        shift 2
        deadline=$((${EPOCHREALTIME//[!0-9]/} + seconds * 1000000))
        while :; do
                if "$@"; then
                        return 0
                fi
                if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
                        echo "wait_until: process $pid exited while waiting for $what" >&2
                        return 1
                fi
                if [ "${EPOCHREALTIME//[!0-9]/}" -ge "$deadline" ]; then
                        echo "wait_until: timed out after ${seconds} s waiting for $what" >&2
                        return 1
                fi
                sleep 0.05
        done
}

# output_is EXPECTED COMMAND [ARGS...]: COMMAND succeeds and prints exactly EXPECTED.
output_is() {
        local expected=$1 out
        shift
        out=$("$@" 2>/dev/null) && [ "$out" == "$expected" ]
}

# output_has TEXT COMMAND [ARGS...]: COMMAND prints TEXT (a fixed string) somewhere; its exit status aside.
output_has() {
        local text=$1 out
        shift
        out=$("$@" 2>/dev/null) || true
        [[ "$out" == *"$text"* ]]
}

# output_matches PATTERN COMMAND [ARGS...]: COMMAND prints something that the shell glob *PATTERN* matches
# ([12] is one of two characters); its exit status aside.
output_matches() {
        local pattern=$1 out
        shift
        out=$("$@" 2>/dev/null) || true
        # shellcheck disable=SC2053 # a glob on purpose
        [[ "$out" == *$pattern* ]]
}

# file_has FILE PATTERN: a line of FILE matches the grep PATTERN (the file may not exist yet).
file_has() {
        grep -q -- "$2" "$1" 2>/dev/null
}

# process_gone PID: the process PID (a child of this shell or not) has exited.
process_gone() {
        if kill -0 "$1" 2>/dev/null; then
                return 1
        fi
}
