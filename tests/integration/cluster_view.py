#!/usr/bin/python3
"""The simulated cluster as its daemons report it, read with busctl --json=short (no D-Bus library): the agents'
GPU objects (their own word on claims), the aggregator's Host and Vm objects and ListGpus. Imported by
test-cluster-model.py; as a command, the checks the shell tests share:

  cluster_view.py owners BUS-ADDRESS        one line per GPU of that agent: ADDRESS OWNER|- STATE MODEL
  cluster_view.py double-on MONITOR-LOG     replays `busctl monitor --json=short` of the aggregator: exit 1 and
                                            name them if two VMs were ever recorded on with the same GPU
"""
import json
import subprocess
import sys

AGENT = "org.gpupass.agent1"
CLUSTER = "org.gpupass.cluster1"
CM = "/org/gpupass/cluster1"


class BusError(Exception):
    """A call that failed: name is the D-Bus error name when busctl printed one (it prints the message only)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def busctl(address, *args, timeout=60, json_out=True):
    """busctl on ADDRESS (None: the system bus of the environment); the parsed JSON answer, or BusError."""
    cmd = ["busctl", f"--timeout={timeout}"]
    cmd += [f"--address={address}"] if address else ["--system"]
    if json_out:
        cmd.append("--json=short")
    p = subprocess.run(cmd + list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise BusError((p.stderr or p.stdout).strip())
    if not json_out:
        return p.stdout
    return json.loads(p.stdout) if p.stdout.strip() else None


def start_busctl(address, *args, timeout=60):
    """The same call started and not waited for: finish_busctl() collects it (several run at once)."""
    cmd = ["busctl", f"--timeout={timeout}", f"--address={address}" if address else "--system", "--json=short"]
    return subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_busctl(p):
    out, err = p.communicate()
    if p.returncode != 0:
        raise BusError((err or out).strip())
    return json.loads(out) if out.strip() else None


def unwrap(props):
    """{name: {"type": .., "data": v}} -> {name: v}"""
    return {k: v["data"] for k, v in props.items()}


def parse_agent_objects(answer):
    """GetManagedObjects of an agent -> {address: {Owner, State, Model, IommuGroup, ...}}"""
    gpus = {}
    for _, ifaces in answer["data"][0].items():
        g = ifaces.get(AGENT + ".Gpu")
        if g:
            g = unwrap(g)
            gpus[g["Address"]] = g
    return gpus


def agent_gpus(address):
    return parse_agent_objects(busctl(address, "call", AGENT, "/org/gpupass/agent1",
                                      "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"))


def parse_cluster_objects(answer):
    """GetManagedObjects of the aggregator -> ({host: props}, {uuid: props})"""
    hosts, vms = {}, {}
    for _, ifaces in answer["data"][0].items():
        if CLUSTER + ".Host" in ifaces:
            h = unwrap(ifaces[CLUSTER + ".Host"])
            hosts[h["Name"]] = h
        if CLUSTER + ".Vm" in ifaces:
            v = unwrap(ifaces[CLUSTER + ".Vm"])
            vms[v["Uuid"].lower()] = v
    return hosts, vms


def double_on(log_path):
    """Replays the aggregator's Vm signals: [(time, gpu, vm-a, vm-b)] for every moment two VMs were on with
    one GPU (by host and address)."""
    by_path, found = {}, []
    for line in open(log_path):
        if not line.startswith("{"):
            continue
        m = json.loads(line)
        if m.get("type") != "signal":
            continue
        path, member, data = m.get("path", ""), m.get("member"), m.get("payload", {}).get("data", [])
        if member == "InterfacesAdded" and CLUSTER + ".Vm" in data[1]:
            by_path[data[0]] = unwrap(data[1][CLUSTER + ".Vm"])
        elif member == "PropertiesChanged" and data and data[0] == CLUSTER + ".Vm":
            by_path.setdefault(path, {}).update(unwrap(data[1]))
        elif member == "InterfacesRemoved":
            by_path.pop(data[0], None)
        else:
            continue
        held = {}
        for p, v in by_path.items():
            if v.get("Power") != "on":
                continue
            for g in v.get("Gpus", []):
                key = (v.get("Host"), g)
                if key in held:
                    found.append((m.get("timestamp-realtime"), key, held[key], v.get("Name", p)))
                held[key] = v.get("Name", p)
    return found


def main(argv):
    if len(argv) == 3 and argv[1] == "owners":
        for a, g in sorted(agent_gpus(argv[2]).items()):
            print(a, g["Owner"] or "-", g["State"], g["Model"].replace(" ", "_"))
        return 0
    if len(argv) == 3 and argv[1] == "double-on":
        found = double_on(argv[2])
        for t, key, a, b in found:
            print(f"{key[0]} {key[1]} recorded on for {a} and {b} (signal at {t})")
        return 1 if found else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
