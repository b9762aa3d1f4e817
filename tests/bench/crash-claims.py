#!/usr/bin/python3
"""Crash test of gpupassd's ownership: SIGKILL at random points during mixed operations.

Runs inside gpupass-simhost (the simulated PCI host) with a private bus already exported in
DBUS_SYSTEM_BUS_ADDRESS. Concurrent clients issue Prepare, Claim, Release and ReturnToHost on the
host's preparable GPUs for a few VMs while a killer SIGKILLs the agent at random moments and restarts it.
Each client records what the agent acknowledged. At the end, with the agent restarted one last time,
it prints three counts, all of which must be 0:

  double-owner groups   a group whose GPUs have different owners, or a claim acknowledged to a VM while
                        another VM's acknowledged claim on the group was still standing
  lost claims           a claim acknowledged to a VM, never released (no Release by that VM was even
                        attempted since), that the agent no longer shows
  half-bound groups     a group with some but not all of its GPUs and companions on vfio-pci

Usage: crash-claims.py GPUPASSD STATE_DIR OPERATIONS
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

AGENT = "org.gpupass.agent1"
MANAGER = "/org/gpupass/agent1"
VMS = ["0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7",
       "16fd2706-8baf-433b-82eb-8c7fada847da"]


def busctl(*args, timeout=30):
    return subprocess.run(["busctl", "--system", *args], capture_output=True, text=True, timeout=timeout)


class Agent:
    def __init__(self, binary, state_dir):
        self.binary, self.state_dir, self.proc = binary, state_dir, None
        self.lock = threading.Lock()
        self.log = open(os.path.join(state_dir, "..", "crash-agent.log"), "a")

    def start(self):
        env = dict(os.environ, STATE_DIRECTORY=self.state_dir)
        self.proc = subprocess.Popen([self.binary], env=env, stderr=self.log)
        for _ in range(400):
            if busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", AGENT, timeout=5).stdout.strip() == "b true":
                return
            if self.proc.poll() is not None:
                raise SystemExit("gpupassd exited during start-up, see crash-agent.log")
            time.sleep(0.025)
        raise SystemExit("gpupassd did not take its name")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def list_gpus():
    out = busctl("--json=short", "call", AGENT, MANAGER, "org.gpupass.agent1.Manager", "ListGpus")
    if out.returncode != 0:
        raise SystemExit("ListGpus failed: " + out.stderr)
    import json
    rows = json.loads(out.stdout)["data"][0]
    # (o, address, model, mode, state, driver, owner, serial, group, numa, companions, bootvga, needs, problem)
    return [{"path": r[0], "address": r[1], "state": r[4], "owner": r[6], "group": r[8],
             "companions": r[10], "problem": r[13]} for r in rows]


class Ledger:
    """What the agent acknowledged, per IOMMU group."""

    def __init__(self):
        self.lock = threading.Lock()
        self.definite = {}        # group -> VM whose acknowledged claim stands
        self.release_tried = {}   # group -> set of VMs that attempted a release since their claim
        self.double_acks = 0

    def claimed(self, group, vm):
        with self.lock:
            owner = self.definite.get(group)
            if owner and owner != vm and owner not in self.release_tried.get(group, set()):
                self.double_acks += 1
            self.definite[group] = vm
            self.release_tried[group] = set()

    def release_attempt(self, group, vm):
        with self.lock:
            self.release_tried.setdefault(group, set()).add(vm)

    def released(self, group, vm):
        with self.lock:
            if self.definite.get(group) == vm:
                del self.definite[group]


def client(seed, gpus, ledger, deadline_ops, counter):
    rnd = random.Random(seed)
    while True:
        with counter["lock"]:
            if counter["n"] >= deadline_ops:
                return
            counter["n"] += 1
        gpu = rnd.choice(gpus)
        vm = rnd.choice(VMS)
        op = rnd.choice(["Prepare", "Claim", "Claim", "Release", "Release", "ReturnToHost"])
        args = ["call", AGENT, gpu["path"], "org.gpupass.agent1.Gpu", op]
        if op in ("Claim", "Release"):
            args += ["s", vm]
        if op == "Release":
            ledger.release_attempt(gpu["group"], vm)
        try:
            result = busctl(*args, timeout=20)
        except subprocess.TimeoutExpired:
            continue
        if result.returncode == 0:
            if op == "Claim":
                ledger.claimed(gpu["group"], vm)
            elif op == "Release":
                ledger.released(gpu["group"], vm)


def sysfs_driver(address):
    link = f"/sys/bus/pci/devices/{address}/driver"
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def main():
    binary, state_dir, operations = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Unbinding a GPU driver takes time on real hardware; it widens the windows a crash can hit.
    subprocess.run([os.environ["GPUPASS_SIMHOST"], "ctl", os.environ["GPUPASS_SIMHOST_CTL"], "unbind-delay", "30"],
                   check=True, capture_output=True)
    agent = Agent(binary, state_dir)
    agent.start()
    gpus = [g for g in list_gpus() if g["group"] >= 0 and not g["problem"]]
    if not gpus:
        raise SystemExit("no preparable GPU on this host")
    ledger = Ledger()
    counter = {"lock": threading.Lock(), "n": 0}
    clients = [threading.Thread(target=client, args=(i, gpus, ledger, operations, counter)) for i in range(4)]
    for t in clients:
        t.start()
    kills = 0
    rnd = random.Random(4242)
    while any(t.is_alive() for t in clients):
        time.sleep(rnd.uniform(0.02, 0.4))
        if not any(t.is_alive() for t in clients):
            break
        agent.kill()
        kills += 1
        agent.start()
    for t in clients:
        t.join()
    agent.kill()
    agent.start()

    final = {g["address"]: g for g in list_gpus()}
    groups = {}
    for g in final.values():
        if g["group"] >= 0:
            groups.setdefault(g["group"], []).append(g)
    double = ledger.double_acks
    for members in groups.values():
        if len({g["owner"] for g in members}) > 1:
            double += 1
    lost = 0
    for group, vm in ledger.definite.items():
        tried = ledger.release_tried.get(group, set())
        if vm in tried:
            continue  # a release by the owner was attempted: the claim may rightly be gone
        owners = {g["owner"] for g in groups.get(group, [])}
        if owners != {vm}:
            lost += 1
    half = 0
    for group, members in groups.items():
        addresses = set()
        for g in members:
            addresses.add(g["address"])
            addresses.update(g["companions"])
        on_vfio = [a for a in addresses if sysfs_driver(a) == "vfio-pci"]
        if on_vfio and len(on_vfio) != len(addresses):
            half += 1
    agent.kill()
    print(f"operations: {operations}, agent kills: {kills}, groups: {len(groups)}")
    print(f"double-owner groups: {double}")
    print(f"lost claims: {lost}")
    print(f"half-bound groups: {half}")
    sys.exit(1 if double or lost or half else 0)


if __name__ == "__main__":
    main()
