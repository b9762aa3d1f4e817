# shellcheck shell=bash
# Shared by the browser test and benchmark (after lib.sh): the Cockpit package served from a copy, cockpit-ws
# with a local session on 127.0.0.1, and the Python driver of headless Chromium (browser.py).
# python3-selenium is Debian's: its python3, not whichever python3 comes first in PATH.
PYTHON=${GPUPASS_PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree (browser.py is imported from there)
COCKPIT_WS=${GPUPASS_COCKPIT_WS:-/usr/lib/cockpit/cockpit-ws}

install_package() { # the package as meson installs it, in $TEST_DIR/xdg/cockpit/gpupass (readable by nobody)
        mkdir -p "$TEST_DIR/xdg/cockpit"
        cp -r "$GPUPASS_SOURCE_ROOT/cockpit" "$TEST_DIR/xdg/cockpit/gpupass"
        rm -rf "$TEST_DIR/xdg/cockpit/gpupass/screenshots" "$TEST_DIR/xdg/cockpit/gpupass/meson.build"
        chmod -R a+rX "$TEST_DIR/xdg"
}

port_open() { # port: something listens on 127.0.0.1:PORT
        "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null
}

free_port() {
        "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_cockpit NAME [UID]: cockpit-ws --local-session on a free port of 127.0.0.1, as root or as UID (its
# bridge then runs as that user, with no group); exports COCKPIT_URL_NAME (the page's own URL, outside the
# shell) and COCKPIT_BASE_NAME.
start_cockpit() {
        local name=$1 port home
        local -a as=()
        home="$TEST_DIR/home-$name"
        mkdir -p "$home"
        if [ $# -gt 1 ]; then
                as=(setpriv --reuid="$2" --regid="$2" --clear-groups --)
                chown "$2:$2" "$home"
        fi
        # The session's own session bus, which the test stops: without one, cockpit-bridge autolaunches a
        # dbus-daemon that outlives the test.
        "${as[@]}" dbus-daemon --session --nofork --nopidfile --address="unix:path=$home/session-bus" \
                >>"$TEST_DIR/cockpit-$name.log" 2>&1 &
        PIDS+=($!)
        wait_until --while "${PIDS[-1]}" 20 "the session bus of cockpit ($name)" test -S "$home/session-bus" || exit 1
        for _ in 1 2 3; do
                port=$(free_port)
                "${as[@]}" env HOME="$home" XDG_DATA_HOME="$TEST_DIR/xdg" XDG_CONFIG_HOME="$home/config" \
                        XDG_CACHE_HOME="$home/cache" XDG_RUNTIME_DIR="$home" LANG=C.UTF-8 \
                        DBUS_SESSION_BUS_ADDRESS="unix:path=$home/session-bus" \
                        "$COCKPIT_WS" --no-tls --local-session=cockpit-bridge --address=127.0.0.1 --port="$port" \
                        >>"$TEST_DIR/cockpit-$name.log" 2>&1 &
                PIDS+=($!)
                if wait_until --while "${PIDS[-1]}" 20 "cockpit-ws ($name) on port $port" port_open "$port"; then
                        export "COCKPIT_URL_${name^^}=http://127.0.0.1:$port/cockpit/@localhost/gpupass/index.html"
                        export "COCKPIT_BASE_${name^^}=http://127.0.0.1:$port"
                        return 0
                fi
                kill "${PIDS[-1]}" 2>/dev/null || true
        done
        echo "cockpit-ws ($name) did not start:"; cat "$TEST_DIR/cockpit-$name.log"; exit 1
}

# run_browser_test SCRIPT: runs it with the test's environment; its "ok - "/"FAIL - " lines count as checks here.
run_browser_test() {
        local line last=
        while IFS= read -r line; do
                last=$line
                case $line in
                "ok - "*) pass "${line#ok - }" ;;
                "FAIL - "*) fail "${line#FAIL - }" ;;
                *) echo "# $line" ;;
                esac
        done < <(export TEST_DIR GPUPASS_SIMHOST GPUPASS_CLUSTERD; PYTHONPATH="$GPUPASS_SOURCE_ROOT/tests/browser" \
                 "$PYTHON" -u "$1" 2>&1 && echo "exit status 0" || echo "exit status $?")
        [[ $last == "exit status 0" ]] || fail "$(basename "$1") ended with ${last#exit }"
}
