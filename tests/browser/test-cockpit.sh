#!/bin/bash
# The Cockpit package in a real browser: the simulated cluster of the demo (four hosts, each agent on its own
# bus, gpupass-clusterd on a default-deny bus with its policy file), cockpit-ws with a local session as root and
# another as nobody, a third on a host's own bus (no aggregator), all on 127.0.0.1, the package served from $XDG_DATA_HOME/cockpit/gpupass, and headless
# Chromium driven over WebDriver by cockpit-test.py, which prints the TAP lines. No systemd needed.
# GPUPASS_SCREENSHOTS=DIR keeps the screenshots there (README's come from cockpit/screenshots).
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/browser/browser-lib.sh"

declare -A fixture=([alpha]=multi-gpu.ini [beta]=single.ini [gamma]=compute.ini [delta]=no-iommu.ini)
for h in alpha beta gamma delta; do start_host $h "$FIX/${fixture[$h]}"; done
start_bus policy "$GPUPASS_SOURCE_ROOT/dbus/org.gpupass.cluster1.conf"
start_clusterd agg alpha beta gamma delta
for h in alpha beta gamma delta; do wait_host $h || { fail "host $h up"; finish; }; done

# The demo's VMs: three that fit, two that do not (each host's reason), one without GPUs.
for vm in "train-1 1 2048 2:NVIDIA Tesla M60|NVIDIA Tesla M60.compute" "infer-1 1 1024 1:NVIDIA Tesla T4.compute" \
          "infer-2 1 1024 2:NVIDIA Tesla T4.compute" "render-1 1 1024 1:NVIDIA Tesla M60" \
          "big-1 1 1024 4:NVIDIA Tesla T4.compute" "plain-1 1 512 "; do
        set -- $vm
        cluster CreateVm sut "$1" "$2" "$3" >/dev/null
        cluster SetVmGpus ss "$1" "${*:4}" >/dev/null
done
cluster PowerOn s train-1 >/dev/null
cluster PowerOn s render-1 >/dev/null

install_package
start_cockpit root
start_cockpit nobody 65534
# A host without the aggregator: a session whose system bus is gamma's, where only its agent is.
DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TEST_DIR/gamma/bus" start_cockpit hostonly
# The test stops this aggregator and starts another on the same configuration and registry (its last check).
GPUPASS_TEST_CLUSTERD_PID=${CLUSTERD_PID[agg]} run_browser_test "$GPUPASS_SOURCE_ROOT/tests/browser/cockpit-test.py"
finish
