#!/usr/bin/python3
"""Swaps the hot-pluggable display device of the guest through QMP: device_del of virtio-gpu-pci on rp1,
wait for DEVICE_DELETED, then device_add of a device with another class and ID at the same address."""
import json
import socket
import sys

sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
f = sock.makefile("rw")


def send(cmd, **args):
    f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
    f.flush()
    while True:
        msg = json.loads(f.readline())
        print(msg, flush=True)
        if "return" in msg or "error" in msg:
            return msg


print(json.loads(f.readline()))
send("qmp_capabilities")
send("device_del", id="hotgpu")
# The guest's PCIe hotplug driver takes a few seconds (attention button) to let the device go.
sock.settimeout(180)
deleted = False
while not deleted:
    msg = json.loads(f.readline())
    print(msg, flush=True)
    deleted = msg.get("event") == "DEVICE_DELETED" and msg.get("data", {}).get("device") == "hotgpu"
print(send("device_add", driver="qxl", bus="rp1", id="hotgpu2"))
