#!/bin/bash
# Scenario 3 on the real kernel, a live reflash stand-in: the guest's pciehp powers the hot-plug slot off
# (the kernel removes the display device: a real remove uevent), the host swaps the device through QMP
# (bochs-display 1234:1111 out, qxl 1b36:0100 in, same address), the slot comes back on and the kernel
# enumerates the new device (a real add uevent). The agent must say what changed: IdentityChanged with
# the old and new model names, PreviousModel. Why this path and not the attention button: README.md.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
A=0000:02:00.0  # the display device on the hot-plug root port (slot 1)
D=/sys/bus/pci/devices/$A
slot=
for s in /sys/bus/pci/slots/*; do [ "$(cat "$s/address")" == "${A%.*}" ] && slot=$s; done
[ -n "$slot" ] && pass "the kernel's hotplug slot for ${A%.*}: $slot" || fail "no hotplug slot for ${A%.*}"
start_bus policy
start_agent
start_monitor
old=$(gpu_prop $A Model)
echo "# before: $A $(cat $D/vendor):$(cat $D/device) class $(cat $D/class), Model $old"

t0=$(date +%s%N)
sysfs_write "$slot/power" 0
wait_until 10 "the kernel to remove $A" test ! -e $D || true
assert_eq "0 gone" "$(cat "$slot/power") $([ -e $D ] && echo present || echo gone)" "slot powered off by pciehp, $A removed by the kernel"

touch "$RESULTS/request-reflash"
wait_until 90 "the host's answer to the reflash request" test -s "$RESULTS/reflash-done" || true
assert_eq "0" "$(cat "$RESULTS/reflash-done" 2>/dev/null || echo 'no answer')" "the host swapped the device through QMP (bochs-display gone, qxl added on rp1)"
grep -E "on bus 2|DEVICE_DELETED after|already unplugged" "$RESULTS/qmp.log" | sed 's/^/# host: /'

# QEMU signals the new card's presence; pciehp powers the slot on for it. If it has not within 30 s (TCG on a loaded host), the
# operator's way: power the slot on.
if ! wait_until 30 "pciehp to power the slot on for the new card" test -e $D; then
        echo "# no automatic power-on after 30 s: writing 1 to $slot/power"
        sysfs_write "$slot/power" 1 || true
        wait_until 30 "the kernel to enumerate the new card at $A" test -e $D || true
fi
assert_eq "0x1b36:0x0100" "$(cat $D/vendor 2>/dev/null):$(cat $D/device 2>/dev/null)" "the kernel enumerated the new device at $A"
# The agent follows the uevents asynchronously (on a loaded host, tens of seconds late): wait for its
# signal, then read what it shows. The qxl's model is pci.ids' name; 1234:1111 has none there.
wait_until 60 "IdentityChanged" file_has "$TEST_DIR/monitor.log" 'Member=IdentityChanged' &&
        pass "IdentityChanged emitted from the real uevents" || fail "no IdentityChanged within 60 s"
new=$(gpu_prop $A Model || true)
echo "# after: $A $(cat $D/vendor):$(cat $D/device) class $(cat $D/class), Model $new, $(( ($(date +%s%N) - t0) / 1000000 )) ms after the slot was powered off"
assert_eq '"Red Hat QXL paravirtual graphic card"' "$new" "the agent's Model follows the new device (pci.ids' name for 1b36:0100)"
log=$(cat "$TEST_DIR/monitor.log")
assert_contains "$log" "OBJECT_PATH \"$(gpu_path $A)\";" "IdentityChanged names the GPU object"
assert_contains "$log" "STRING $old;" "IdentityChanged carries the old model"
assert_contains "$log" "STRING $new;" "IdentityChanged carries the new model"
grep -A6 'Member=IdentityChanged' "$TEST_DIR/monitor.log" | grep -E 'OBJECT_PATH|STRING' | sed 's/^ */# signal: /'
assert_eq "$old" "$(gpu_prop $A PreviousModel)" "PreviousModel shows the old model"
finish
