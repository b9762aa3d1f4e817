#!/usr/bin/python3
"""Swaps the guest's hot-pluggable display device through QMP, once the guest has powered its slot off:
the bochs-display on rp1 goes (QEMU 7.2 unplugs it itself when the guest turns the slot off; if it is
still there, device_del and DEVICE_DELETED), then device_add of a qxl (another vendor and device ID) at
the same address, checked with query-pci. Exit status 0 only if the qxl is there.
Usage: qmp-reflash.py QMP_SOCKET
With `add DRIVER BUS ID` it hot-adds instead: device_add of DRIVER on root port BUS as ID (exit status 0
only if QEMU then has it there), for the systemd scenario's hot add of a pass-through device."""
import json
import socket
import sys
import time

sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
sock.settimeout(60)
f = sock.makefile("rw")


def read():
    msg = json.loads(f.readline())
    print(msg, flush=True)
    return msg


def send(cmd, **args):
    f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
    f.flush()
    while True:
        msg = read()
        if "return" in msg or "error" in msg:
            return msg


def deleted(msg):
    return msg.get("event") == "DEVICE_DELETED" and msg.get("data", {}).get("device") == "hotgpu"


def slot_devices():
    """What QEMU has on the root port's bus (bus 2), as query-pci shows it."""
    found = []
    for bus in send("query-pci")["return"]:
        for dev in bus["devices"]:
            for sub in dev.get("pci_bridge", {}).get("devices", []):
                if dev.get("pci_bridge", {}).get("bus", {}).get("secondary") == 2:
                    found.append(f"{sub['slot']:02x}.{sub['function']} {sub['id']['vendor']:04x}:{sub['id']['device']:04x} {sub['qdev_id']}")
    return found


def peripherals():
    """The -device/device_add devices QEMU has, by id: {id: "child<TYPE>"}."""
    return {p["name"]: p["type"] for p in send("qom-list", path="/machine/peripheral")["return"]}


def add(driver, bus, dev_id):
    reply = send("device_add", driver=driver, bus=bus, id=dev_id)
    if "error" in reply:
        sys.exit(f"device_add {driver} on {bus} refused")
    if peripherals().get(dev_id) != f"child<{driver}>":
        sys.exit(f"QEMU does not have {dev_id} ({driver}) after device_add")
    print(f"{driver} added on {bus} as {dev_id}", flush=True)


def reflash():
    start = time.monotonic()
    before = slot_devices()
    print(f"on bus 2 before: {before}", flush=True)
    if "hotgpu" in peripherals():
        reply = send("device_del", id="hotgpu")
        if "error" in reply:
            sys.exit("device_del refused")
        # The event may come before the reply (slot already off) or after it.
        gone = False
        while not gone and time.monotonic() - start < 60:
            gone = deleted(read())
        if not gone:
            sys.exit("no DEVICE_DELETED within 60 s")
        print(f"DEVICE_DELETED after {time.monotonic() - start:.1f} s", flush=True)
    else:
        # QEMU 7.2 unplugs a device whose slot the guest powers off (power and power indicator off).
        print("QEMU already unplugged hotgpu when the guest powered the slot off", flush=True)
    reply = send("device_add", driver="qxl", bus="rp1", id="hotgpu2")
    if "error" in reply:
        sys.exit("device_add refused")
    after = slot_devices()
    print(f"on bus 2 after device_add qxl: {after}", flush=True)
    if peripherals().get("hotgpu2") != "child<qxl>" or "hotgpu" in peripherals():
        sys.exit("QEMU does not have the qxl alone on rp1")


read()
send("qmp_capabilities")
if sys.argv[2:3] == ["add"]:
    add(*sys.argv[3:6])
else:
    reflash()
