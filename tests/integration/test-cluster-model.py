#!/usr/bin/python3
"""Model-based randomized test of the aggregator's VM lifecycle (issue 12).

A simulated cluster of six hosts of different sizes (two RTX A6000 in one IOMMU group with their HDMI audio,
four V100, the multi-GPU host, a compute host, a host without IOMMU, and a host whose agent never runs), each
agent on its own dbus-daemon over its simulated sysfs, gpupass-clusterd on the test's bus. Random operations
(the operator's calls, agents killed and restarted, a host's bus gone and back, the aggregator stopped with
SIGTERM or SIGKILL, even in the middle of a call, GPUs reflashed, claims by VMs this registry does not know),
and at every quiescent point the invariants, checked against the agents' own objects (Owner, State):

  I1 every VM on in the registry holds a claim on every GPU of its assignment at its host's agent
  I2 every claim at an agent for a VM of this registry belongs to a VM that is on, on that host
  I3 no GPU is in two VMs' assignments (VMs on)
  I4 every VM the operator wants on, with a feasible host, is on: after PowerOn (a refusal is checked against
     the model's own feasibility, from the agents' free GPUs, CPUs, memory, affinity, maintenance,
     reachability), across agent, bus and aggregator restarts, and after ExitHostMaintenance
  I5 a VM flagged for reconfiguration is off
  I6 a VM the operator powered off (or that waits for its host's maintenance to end) is off
  I7 claims of VMs this registry does not know (foreign) stay as they are
  and the aggregator's view of every reachable host equals its agent's (model, state, owner of each GPU), the
  hosts' states are what the model expects, and no refusal calls a reachable host unreachable.

GPUPASS_MODEL_SEED (default 1203) and GPUPASS_MODEL_STEPS (default 1000) change the run; a failure prints
the seed, the step and the last steps. Quiescence is polled with a bound, never slept for.
"""
import collections
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_view import (AGENT, CLUSTER, CM, BusError, busctl, finish_busctl,  # noqa: E402
                          parse_agent_objects, parse_cluster_objects, start_busctl)

SEED = int(os.environ.get("GPUPASS_MODEL_SEED", "1203"))
STEPS = int(os.environ.get("GPUPASS_MODEL_STEPS", "1000"))
SRC = os.environ["GPUPASS_SOURCE_ROOT"]
FIX = os.path.join(SRC, "tests/sim/fixtures")
# Longer than the aggregator's reconnection backoff (30 s at most): a host whose agent comes back is seen by then.
SETTLE_S = float(os.environ.get("GPUPASS_MODEL_SETTLE_S", "45"))
MAX_VMS = 16

M60, M60C, T4C = "NVIDIA Tesla M60", "NVIDIA Tesla M60.compute", "NVIDIA Tesla T4.compute"
V100C, A6K = "NVIDIA Tesla V100 PCIe 16GB.compute", "NVIDIA RTX A6000"
# name: fixture, CPUs, memory MiB (None: configured, its agent never runs).
HOSTS = {
    "pair": ("a6000-pair.ini", 32, 131072),
    "volta": ("four-v100.ini", 24, 98304),
    "mixed": ("multi-gpu.ini", 12, 49152),
    "tesla": ("compute.ini", 8, 16384),
    "plain": ("no-iommu.ini", 4, 8192),
    "ghost": None,
}
REQUESTS = ["", f"1:{M60}", f"1:{M60}|{M60C}", f"2:{M60}|{M60C}", f"1:{T4C}", f"2:{T4C}", f"3:{T4C}",
            f"1:{V100C}", f"2:{V100C}", f"4:{V100C}", f"1:{A6K}", f"2:{A6K}", f"1:{M60};1:{M60C}",
            f"1:{V100C};1:{T4C}", "=mixed/0000:3c:00.0", "=volta/0000:18:00.0", "=pair/0000:43:00.0",
            "=plain/0000:3b:00.0", "=ghost/0000:01:00.0"]
# GPUs a reflash may change (graphics <-> compute): host, address, its companions, group.
M60_ID = "vendor=0x10de device=0x13f2 subsystem_vendor=0x10de subsystem_device=0x115e revision=0xa1 driver=nouveau"
AUDIO = "vendor=0x10de device=0x0fbb class=0x040300 driver=snd_hda_intel"
REFLASHABLE = [("mixed", "0000:3b:00.0", ["0000:3b:00.1"], 12), ("mixed", "0000:3c:00.0", [], 13),
               ("tesla", "0000:b3:00.0", [], 32)]
FOREIGN = ["5d41402a-bc4b-4a76-b971-9d911017c592", "7d793037-a076-4c8e-9c6a-4b5f00a4c1f2"]


class Failure(Exception):
    pass


class Vm:
    def __init__(self, uuid, name, vcpus, mem):
        self.uuid, self.name, self.vcpus, self.mem = uuid, name, vcpus, mem
        self.req, self.affinity = "", []
        # want: "on" (at self.host), "off", "either" (the outcome of an interrupted call: not judged),
        # "pending" (off for its host's maintenance, to come back there; self.changed: its configuration
        # changed meanwhile, so its return is not judged)
        self.want, self.host, self.changed = "off", "", False


class Host:
    def __init__(self, name, spec, d):
        self.name, self.spec, self.dir = name, spec, d
        self.bus = self.agent = self.simhost = None
        self.env = {}
        self.maint = False
        self.compute = {a: False for h, a, _, _ in REFLASHABLE if h == name}
        if name == "tesla":
            self.compute["0000:b3:00.0"] = True

    @property
    def address(self):
        return f"unix:path={self.dir}/bus"

    @property
    def live(self):
        return self.bus is not None and self.agent is not None


class Model:
    def __init__(self):
        self.rng = random.Random(SEED)
        self.dir = tempfile.mkdtemp(prefix="/tmp/gpupass-cluster-model.")
        os.chmod(self.dir, 0o755)
        self.hosts = {n: Host(n, s, os.path.join(self.dir, n)) for n, s in HOSTS.items()}
        self.vms = {}
        self.foreign = {}  # (host, address) -> foreign VM UUID, per GPU of each group claimed
        self.clusterd = None
        self.cluster_bus = None
        self.step = 0
        self.history = collections.deque(maxlen=30)
        self.ops = collections.Counter()
        self.outcomes = collections.Counter()
        self.checks = 0
        self.compared = collections.Counter()
        self.procs = []
        self.snap = None
        self.vm_serial = 0
        self.op_time = collections.Counter()
        self.settle_time = collections.Counter()
        self.polls = 0
        self.read_all = True

    # ---- processes -------------------------------------------------------------------------------------
    def spawn(self, cmd, log, env=None):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env)
        self.procs.append(p)
        return p

    def wait_for(self, what, predicate, timeout=20):
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise Failure(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.05)

    def name_owned(self, address, name):
        try:
            return busctl(address, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                          "NameHasOwner", "s", name, timeout=5)["data"][0]
        except BusError:
            return False

    def start_simhost(self, h):
        fixture, cpus, mem = h.spec
        os.makedirs(os.path.join(h.dir, "state"), exist_ok=True)
        os.makedirs(os.path.join(h.dir, "etc"), exist_ok=True)
        os.chmod(h.dir, 0o755)
        text = open(os.path.join(FIX, fixture)).read().replace("[host]\n", f"[host]\ncpus={cpus}\nmemory_mib={mem}\n", 1)
        sized = os.path.join(self.dir, f"{h.name}.ini")
        open(sized, "w").write(text)
        # The simulated host stays while its command runs; its environment (preload, testbed, kernel socket)
        # lets this test start the host's bus and agent itself, and start them again.
        envfile = os.path.join(h.dir, "simhost.env")
        h.simhost = self.spawn([os.environ["GPUPASS_SIMHOST"], sized, "--", "sh", "-c",
                                'env -0 >"$1.tmp" && mv "$1.tmp" "$1" && exec sleep 100000', "sh", envfile],
                               os.path.join(h.dir, "simhost.log"))
        self.wait_for(f"simulated host {h.name}", lambda: os.path.exists(envfile))
        env = dict(kv.split("=", 1) for kv in open(envfile).read().split("\0") if "=" in kv)
        h.env = {k: env[k] for k in ("LD_PRELOAD", "UMOCKDEV_DIR", "GPUPASS_SIMKERNEL_SOCKET", "GPUPASS_SIMHOST_CTL")
                 if k in env}

    def start_bus(self, h):
        sock = os.path.join(h.dir, "bus")
        if os.path.exists(sock):
            os.unlink(sock)
        conf = os.path.join(h.dir, "bus.conf")
        text = open(os.path.join(SRC, "tests/integration/system-bus.conf.in")).read()
        open(conf, "w").write(text.replace("@SOCKET@", sock).replace(
            "@POLICY@", os.path.join(SRC, "dbus/org.gpupass.agent1.conf")))
        h.bus = self.spawn(["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile"],
                           os.path.join(h.dir, "bus.log"))
        self.wait_for(f"{h.name}'s bus", lambda: os.path.exists(sock))

    def start_agent(self, h):
        env = dict(os.environ, **h.env, DBUS_SYSTEM_BUS_ADDRESS=h.address, STATE_DIRECTORY=f"{h.dir}/state",
                   CONFIGURATION_DIRECTORY=f"{h.dir}/etc")
        h.agent = self.spawn([os.environ["GPUPASSD"]], os.path.join(h.dir, "agent.log"), env)
        self.wait_for(f"{h.name}'s agent", lambda: h.agent.poll() is None and self.name_owned(h.address, AGENT))

    def stop(self, p, sig=signal.SIGTERM):
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
        p.wait(timeout=30)

    def start_clusterd(self):
        d = os.path.join(self.dir, "agg")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.cluster_address, CONFIGURATION_DIRECTORY=f"{d}/etc",
                   STATE_DIRECTORY=f"{d}/state")
        self.clusterd = self.spawn([os.environ["GPUPASS_CLUSTERD"]], os.path.join(self.dir, "agg.log"), env)
        self.wait_for("the aggregator's name",
                      lambda: self.clusterd.poll() is None and self.name_owned(self.cluster_address, CLUSTER))

    def stop_clusterd(self, sig):
        self.stop(self.clusterd, sig)
        self.wait_for("the aggregator's name to leave",
                      lambda: not self.name_owned(self.cluster_address, CLUSTER))

    def setup(self):
        for h in self.hosts.values():
            if h.spec:
                self.start_simhost(h)
                self.start_bus(h)
                self.start_agent(h)
        sock = os.path.join(self.dir, "cluster-bus")
        conf = os.path.join(self.dir, "cluster-bus.conf")
        open(conf, "w").write(open(os.path.join(SRC, "tests/integration/open-bus.conf.in")).read()
                              .replace("@SOCKET@", sock))
        self.cluster_bus = self.spawn(["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile"],
                                      os.path.join(self.dir, "cluster-bus.log"))
        self.cluster_address = f"unix:path={sock}"
        self.wait_for("the aggregator's bus", lambda: os.path.exists(sock))
        os.makedirs(os.path.join(self.dir, "agg/etc"))
        with open(os.path.join(self.dir, "agg/etc/clusterd.conf"), "w") as f:
            f.write("[Cluster]\nAdminGroup=gpupass\n")
            for h in self.hosts.values():
                f.write(f"\n[Host {h.name}]\nAddress={h.address}\n")
        self.start_clusterd()

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
                p.wait()

    # ---- calls ------------------------------------------------------------------------------------------
    def cluster(self, method, *args, timeout=60):
        return busctl(self.cluster_address, "call", CLUSTER, CM, CLUSTER + ".Manager", method, *args,
                      timeout=timeout)

    def agent_call(self, h, path, iface, method, *args):
        return busctl(h.address, "call", AGENT, path, iface, method, *args)

    def gpu_path(self, h, address):
        return self.agent_call(h, "/org/gpupass/agent1", AGENT + ".Manager", "GetGpu", "s", address)["data"][0]

    # ---- observation and invariants ----------------------------------------------------------------------
    def observe(self):
        """One snapshot, every reading started at once: the aggregator's objects and GPU list, and each
        reachable agent's GPU objects and maintenance flag."""
        ca = self.cluster_address
        calls = {"objects": start_busctl(ca, "call", CLUSTER, CM, "org.freedesktop.DBus.ObjectManager",
                                         "GetManagedObjects"),
                 }
        if self.read_all:
            calls["gpus"] = start_busctl(ca, "call", CLUSTER, CM, CLUSTER + ".Manager", "ListGpus")
        for h in self.hosts.values():
            if h.live:
                calls[h.name] = start_busctl(h.address, "call", AGENT, "/org/gpupass/agent1",
                                             "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
                if self.read_all:
                    calls[h.name + "/maint"] = start_busctl(h.address, "get-property", AGENT,
                                                            "/org/gpupass/agent1", AGENT + ".Manager", "Maintenance")
        out = {}
        for k, p in calls.items():
            try:
                out[k] = finish_busctl(p)
            except BusError as e:
                out[k] = e
        return out

    def snapshot(self):
        raw = self.observe()
        for k in ("objects", "gpus"):
            if isinstance(raw.get(k), BusError):
                return None, [f"the aggregator does not answer {k}: {raw[k].message}"]
        hosts, vms = parse_cluster_objects(raw["objects"])
        snap = {"hosts": hosts, "vms": vms, "agents": {}, "maint": {},
                "view": {(g[0], g[1]): (g[2], g[4], g[5].lower()) for g in raw["gpus"]["data"][0]}
                if "gpus" in raw else None}
        problems = []
        for h in self.hosts.values():
            if not h.live:
                continue
            if isinstance(raw[h.name], BusError) or isinstance(raw.get(h.name + "/maint"), BusError):
                problems.append(f"agent {h.name} does not answer")
                continue
            snap["agents"][h.name] = parse_agent_objects(raw[h.name])
            if h.name + "/maint" in raw:
                snap["maint"][h.name] = raw[h.name + "/maint"]["data"]
        return snap, problems

    def evaluate(self, snap):
        p = []
        hosts, vms, agents = snap["hosts"], snap["vms"], snap["agents"]
        # The hosts as the model has them, and the aggregator's view of each reachable one as its agent says.
        for h in self.hosts.values():
            state = hosts.get(h.name, {}).get("State")
            if h.live:
                want = "maintenance" if h.maint else "up"
                if state != want:
                    p.append(f"host {h.name} is {state}, expected {want}")
                if h.name in snap["maint"] and snap["maint"][h.name] != h.maint:
                    p.append(f"agent {h.name} says Maintenance={snap['maint'].get(h.name)}, the model {h.maint}")
                gpus = agents.get(h.name, {})
                for a, g in gpus.items() if snap["view"] is not None else ():
                    seen = snap["view"].get((h.name, a))
                    mine = (g["Model"], g["State"], g["Owner"].lower())
                    if seen != mine:
                        p.append(f"aggregator's view of {h.name} {a} is {seen}, its agent says {mine}")
                free = sum(g["State"] in ("host", "vfio") for g in gpus.values())
                seen = (hosts.get(h.name, {}).get("GpuCount"), hosts.get(h.name, {}).get("FreeGpuCount"))
                if h.name in agents and seen != (len(gpus), 0 if h.maint else free) and seen != (len(gpus), free):
                    p.append(f"aggregator counts {seen} GPUs (all, free) on {h.name}, its agent {len(gpus), free}")
            elif state not in ("unreachable", "connecting"):
                p.append(f"host {h.name} is {state}, expected unreachable")
        if set(vms) != set(self.vms):
            p.append(f"registry VMs {sorted(vms)} differ from the model's {sorted(self.vms)}")
            return p
        on = {u: v for u, v in vms.items() if v["Power"] == "on"}
        # I1
        for u, v in on.items():
            if v["Host"] not in agents:
                continue
            for a in v["Gpus"]:
                owner = agents[v["Host"]].get(a, {}).get("Owner", "<no such GPU>").lower()
                self.compared["I1"] += 1
                if owner != u:
                    p.append(f"I1: VM {v['Name']} is on at {v['Host']} with {a}, its agent says owner {owner!r}")
        # I2
        for hn, gpus in agents.items():
            for a, g in gpus.items():
                o = g["Owner"].lower()
                if o in vms:
                    self.compared["I2"] += 1
                    if vms[o]["Power"] != "on" or vms[o]["Host"] != hn:
                        p.append(f"I2: agent {hn} holds {a} for VM {vms[o]['Name']}, which the registry has "
                                 f"{vms[o]['Power']} on {vms[o]['Host']!r}")
        # I3
        held = {}
        for u, v in on.items():
            for a in v["Gpus"]:
                self.compared["I3"] += 1
                k = (v["Host"], a)
                if k in held:
                    p.append(f"I3: {k[0]} {k[1]} is assigned to VM {held[k]} and VM {v['Name']}")
                held[k] = v["Name"]
        for u, m in self.vms.items():
            v = vms[u]
            # I4: wanted on, on its host (judged while the host is reachable: else nobody can tell).
            if m.want == "on" and m.host in agents:
                self.compared["I4"] += 1
                if v["Power"] != "on" or v["Host"] != m.host:
                    p.append(f"I4: VM {m.name} should be on at {m.host}; the registry has {v['Power']} on "
                             f"{v['Host']!r} (flags {v['Flags']!r})")
            # I5
            if v["NeedsReconfiguration"]:
                self.compared["I5"] += 1
                if v["Power"] != "off":
                    p.append(f"I5: VM {m.name} is flagged {v['Flags']!r} and {v['Power']}")
            # I6
            if m.want in ("off", "pending"):
                self.compared["I6"] += 1
                if v["Power"] != "off":
                    p.append(f"I6: VM {m.name} should be off ({m.want}), the registry has it on at {v['Host']}")
        # I7
        for (hn, a), f in self.foreign.items():
            if hn in agents:
                self.compared["I7"] += 1
                if agents[hn].get(a, {}).get("Owner", "").lower() != f:
                    p.append(f"I7: the foreign claim of {hn} {a} by {f} is gone: "
                             f"owner {agents[hn].get(a, {}).get('Owner')!r}")
        return p

    def settle(self, extra=None):
        """Polls until the cluster is quiescent and every invariant holds, up to SETTLE_S seconds; then the
        snapshot is the model's picture of the cluster for the next step."""
        end = time.monotonic() + SETTLE_S
        while True:
            self.polls += 1
            snap, problems = self.snapshot()
            if snap is not None:
                problems += self.evaluate(snap)
                if extra:
                    problems += extra(snap)
            if not problems:
                self.checks += 1
                self.snap = snap
                return snap
            if time.monotonic() > end:
                raise Failure("not quiescent, or an invariant broken, after %.0f s:\n  " % SETTLE_S
                              + "\n  ".join(problems[:12]))
            time.sleep(0.03)

    # ---- feasibility (the model's own placement rules) ----------------------------------------------------
    def free_gpus(self, hn):
        return {a: g["Model"] for a, g in self.snap["agents"].get(hn, {}).items() if g["State"] in ("host", "vfio")}

    def fits(self, vm, hn, free):
        h = self.hosts[hn]
        if not h.live or h.maint or (vm.affinity and hn not in vm.affinity):
            return False
        on = [v for v in self.snap["vms"].values() if v["Power"] == "on" and v["Host"] == hn]
        cpus, mem = h.spec[1] - sum(v["Vcpus"] for v in on), h.spec[2] - sum(v["MemoryMiB"] for v in on)
        if vm.vcpus > cpus or vm.mem > mem:
            return False
        counts = collections.Counter(free.values())
        reqs = [r for r in vm.req.split(";") if r]

        def place(i, counts):
            if i == len(reqs):
                return True
            r = reqs[i]
            if r.startswith("="):
                host, addr = r[1:].split("/")
                if host != hn or addr not in free or counts[free[addr]] == 0:
                    return False
                c = counts.copy()
                c[free[addr]] -= 1
                return place(i + 1, c)
            n, models = r.split(":", 1)
            for model in models.split("|"):
                if counts[model] >= int(n):
                    c = counts.copy()
                    c[model] -= int(n)
                    if place(i + 1, c):
                        return True
            return False
        return place(0, counts)

    def feasible_hosts(self, vm):
        return [hn for hn in self.hosts if self.fits(vm, hn, self.free_gpus(hn))]

    # ---- operations ---------------------------------------------------------------------------------------
    def pick_vm(self, pred=lambda m, v: True):
        c = [m for u, m in sorted(self.vms.items()) if pred(m, self.snap["vms"][u])]
        return self.rng.choice(c) if c else None

    def expect_error(self, e, *names):
        """A refusal the model allows: its message must carry one of NAMES' texts (busctl prints no name)."""
        for n in names:
            if re.search(n, e.message):
                return n
        raise Failure(f"unexpected refusal: {e.message}")

    def op_create(self):
        self.vm_serial += 1
        name = f"vm-{self.vm_serial}"
        vcpus, mem = self.rng.choice([1, 2, 2, 4, 8, 16]), self.rng.choice([512, 2048, 4096, 8192, 16384, 65536])
        u = self.cluster("CreateVm", "sut", name, str(vcpus), str(mem))["data"][0].lower()
        self.vms[u] = Vm(u, name, vcpus, mem)
        return f"CreateVm {name} {vcpus} vCPUs {mem} MiB"

    def op_delete(self):
        m = self.pick_vm(lambda m, v: v["Power"] == "off")
        self.cluster("DeleteVm", "s", m.name)
        del self.vms[m.uuid]
        return f"DeleteVm {m.name}"

    def op_set_gpus(self):
        m = self.pick_vm()
        req = self.rng.choice(REQUESTS)
        was_on = self.snap["vms"][m.uuid]["Power"] == "on"
        try:
            self.cluster("SetVmGpus", "ss", m.name, req)
        except BusError as e:
            if not was_on:
                raise Failure(f"SetVmGpus of {m.name}, which is off, refused: {e.message}")
            return f"SetVmGpus {m.name} {req!r}: {self.expect_error(e, 'is on')}"
        if was_on:
            raise Failure(f"SetVmGpus of {m.name}, which is on, accepted")
        m.req, m.changed = req, True
        return f"SetVmGpus {m.name} {req!r}"

    def op_set_affinity(self):
        m = self.pick_vm()
        hosts = self.rng.sample(sorted(self.hosts), self.rng.choice([0, 0, 1, 1, 2, 3]))
        try:
            self.cluster("SetVmAffinity", "sas", m.name, str(len(hosts)), *hosts)
        except BusError as e:
            return f"SetVmAffinity {m.name} {hosts}: {self.expect_error(e, 'is on')}"
        m.affinity, m.changed = hosts, True
        return f"SetVmAffinity {m.name} {hosts}"

    def check_no_host(self, m, message):
        for hn, why in re.findall(r" ([a-z]+): ([^;]*);", message):
            if why == "unreachable" and hn in self.hosts and self.hosts[hn].live:
                raise Failure(f"NoHostAvailable calls {hn} unreachable, it is up: {message}")
        feasible = self.feasible_hosts(m)
        if feasible:
            raise Failure(f"I4: VM {m.name} stays off ({message}), the model finds room on {feasible}")

    def op_power_on(self):
        # Mostly VMs that are off (a PowerOn of a VM that is on is a refusal or nothing).
        m = self.pick_vm(lambda m, v: v["Power"] == "off" or self.rng.random() < 0.1) or self.pick_vm()
        v = self.snap["vms"][m.uuid]
        feasible = self.feasible_hosts(m) if v["Power"] == "off" else []
        try:
            ans = self.cluster("PowerOn", "s", m.name)["data"]
        except BusError as e:
            if v["Power"] == "on":
                return f"PowerOn {m.name} (on): {self.expect_error(e, 'already on')}"
            if v["NeedsReconfiguration"]:
                return f"PowerOn {m.name} (flagged): {self.expect_error(e, 'configuration|reconfigur')}"
            self.expect_error(e, "No host can run")
            self.check_no_host(m, e.message)
            # Refused: wanted off, unless it still waits for its host's maintenance or return (restart:HOST),
            # which may bring it back there (the PowerOn asked for on; either is defensible).
            m.want = "either" if m.want == "pending" or "restart:" in v["Flags"] else "off"
            self.outcomes["PowerOn refused: no host"] += 1
            return f"PowerOn {m.name}: no host"
        if v["Power"] == "on":
            return f"PowerOn {m.name} (on already): {ans}"
        if v["NeedsReconfiguration"]:
            raise Failure(f"PowerOn of {m.name}, flagged {v['Flags']!r}, succeeded: {ans}")
        if ans[0] not in feasible:
            raise Failure(f"PowerOn placed {m.name} on {ans[0]}, the model finds room only on {feasible}")
        m.want, m.host = "on", ans[0]
        self.outcomes["PowerOn placed"] += 1
        return f"PowerOn {m.name} -> {ans[0]} {ans[1]}"

    def op_power_off(self):
        m = self.pick_vm(lambda m, v: v["Power"] == "on" or m.want == "pending" or self.rng.random() < 0.1) \
            or self.pick_vm()
        v = self.snap["vms"][m.uuid]
        try:
            self.cluster("PowerOff", "s", m.name)
        except BusError as e:
            if v["Power"] == "on" and not self.hosts[v["Host"]].live:
                m.want = "either"
                return f"PowerOff {m.name}: {self.expect_error(e, 'unreachable')}"
            raise Failure(f"PowerOff of {m.name} ({v['Power']} on {v['Host']!r}) refused: {e.message}")
        m.want = "off"
        return f"PowerOff {m.name} (was {v['Power']})"

    def maintenance(self, method, preferred):
        """METHOD on a host, mostly one of PREFERRED: (host, the VMs answered), or (host, None) after the
        refusal an unreachable host gets."""
        h = self.hosts[self.rng.choice(preferred if preferred and self.rng.random() < 0.8 else sorted(self.hosts))]
        try:
            ans = self.cluster(method, "s", h.name)["data"][0]
        except BusError as e:
            if h.live:
                raise Failure(f"{method} {h.name} refused: {e.message}")
            self.expect_error(e, "unreachable")
            return h, None
        if not h.live:
            raise Failure(f"{method} {h.name}, unreachable, succeeded")
        return h, ans

    def op_enter(self):
        # Mostly a host where GPU VMs run.
        busy = sorted({v["Host"] for u, v in self.snap["vms"].items() if v["Power"] == "on" and self.vms[u].req})
        h, ans = self.maintenance("EnterHostMaintenance", busy)
        if ans is None:
            return f"EnterHostMaintenance {h.name}: unreachable"
        h.maint = True
        for u, m in self.vms.items():
            v = self.snap["vms"][u]
            if v["Power"] == "on" and v["Host"] == h.name and m.req:
                m.want, m.host, m.changed = "pending", h.name, m.want != "on"
        return f"EnterHostMaintenance {h.name} -> {len(ans)} VMs off"

    def op_exit(self):
        h, ans = self.maintenance("ExitHostMaintenance", sorted(h.name for h in self.hosts.values() if h.maint))
        if ans is None:
            return f"ExitHostMaintenance {h.name}: unreachable"
        h.maint = False
        back = 0
        for u, m in self.vms.items():
            if m.want == "pending" and m.host == h.name:
                # Not judged: its configuration changed meanwhile, it was flagged, or its affinity (changed
                # while it ran) no longer has the host.
                judged = not m.changed and not self.snap["vms"][u]["NeedsReconfiguration"] and \
                    (not m.affinity or h.name in m.affinity)
                m.want = "on" if judged else "either"
                back += judged
        return f"ExitHostMaintenance {h.name} -> {len(ans)} VMs back, {back} judged"

    def op_kill_agent(self):
        h = self.rng.choice([h for h in self.hosts.values() if h.live])
        sig = self.rng.choice([signal.SIGTERM, signal.SIGKILL])
        self.stop(h.agent, sig)
        h.agent = None
        return f"agent {h.name} {sig.name}"

    def op_start_agent(self):
        h = self.rng.choice([h for h in self.hosts.values() if h.spec and h.agent is None])
        self.start_agent(h)
        return f"agent {h.name} started"

    def op_bus_bounce(self):
        h = self.rng.choice([h for h in self.hosts.values() if h.live])
        self.stop(h.bus)
        h.bus = None
        # The host reboots: its agent goes with its bus (gpupassd does not exit by itself when its bus goes).
        self.stop(h.agent)
        h.agent = None
        self.wait_for(f"{h.name} unreachable", lambda: self.host_state(h.name) in ("unreachable", "connecting"))
        self.start_bus(h)
        self.start_agent(h)
        return f"bus of {h.name} gone and back"

    def host_state(self, name):
        try:
            return busctl(self.cluster_address, "get-property", CLUSTER, f"{CM}/host/{name}", CLUSTER + ".Host",
                          "State", timeout=10)["data"]
        except BusError:
            return None

    def op_restart_clusterd(self):
        sig = self.rng.choice([signal.SIGTERM, signal.SIGKILL])
        self.stop_clusterd(sig)
        self.start_clusterd()
        return f"aggregator {sig.name}, restarted"

    def op_kill_clusterd_during(self):
        """SIGKILL while a call is on its way: its outcome is whatever the registry and the agents say after
        the restart; only I1-I3, I5 and I7 judge it."""
        kinds = ["PowerOn", "PowerOff", "EnterHostMaintenance", "ExitHostMaintenance"]
        kind = self.rng.choice(kinds)
        if kind.endswith("Maintenance"):
            h = self.rng.choice([h for h in self.hosts.values() if h.live])
            arg, affected = h.name, [m for m in self.vms.values() if self.snap["vms"][m.uuid]["Host"] == h.name]
        else:
            m = self.pick_vm()
            arg, affected, h = m.name, [m], None
        p = start_busctl(self.cluster_address, "call", CLUSTER, CM, CLUSTER + ".Manager", kind, "s", arg)
        delay = self.rng.uniform(0, 0.06)
        time.sleep(delay)
        self.stop(self.clusterd, signal.SIGKILL)
        try:
            finish_busctl(p)
            outcome = "answered"
        except BusError as e:
            outcome = e.message.splitlines()[0][:60]
        self.wait_for("the aggregator's name to leave", lambda: not self.name_owned(self.cluster_address, CLUSTER))
        for m in affected:
            m.want = "either"
        if h is not None:
            h.maint = busctl(h.address, "get-property", AGENT, "/org/gpupass/agent1", AGENT + ".Manager",
                             "Maintenance")["data"]
        self.start_clusterd()
        return f"aggregator SIGKILL {delay * 1000:.0f} ms into {kind} {arg} ({outcome}), restarted"

    def reflashable(self):
        out = []
        for hn, a, comp, group in REFLASHABLE:
            g = self.snap["agents"].get(hn, {}).get(a)
            if g and not g["Owner"] and not self.hosts[hn].maint:
                out.append((hn, a, comp, group))
        return out

    def op_reflash(self):
        hn, a, comp, group = self.rng.choice(self.reflashable())
        h = self.hosts[hn]
        ctl = [os.environ["GPUPASS_SIMHOST"], "ctl", h.env["GPUPASS_SIMHOST_CTL"]]
        h.compute[a] = not h.compute[a]
        cls = "0x030200" if h.compute[a] else "0x030000"
        for d in comp + [a]:
            subprocess.run(ctl + ["remove", d], check=True, capture_output=True)
        subprocess.run(ctl + ["add", a] + M60_ID.split() + [f"class={cls}", f"iommu_group={group}"],
                       check=True, capture_output=True)
        for d in comp:
            subprocess.run(ctl + ["add", d] + AUDIO.split() + [f"iommu_group={group}"], check=True,
                           capture_output=True)
        model = M60C if h.compute[a] else M60
        self.settle_extra = lambda snap: ([] if snap["agents"].get(hn, {}).get(a, {}).get("Model") == model
                                          else [f"{hn} {a} not yet {model}"])
        return f"reflash {hn} {a} -> {model}"

    def op_foreign_claim(self):
        c = [(hn, a) for hn, h in self.hosts.items() if h.live and not h.maint for a in self.free_gpus(hn)]
        hn, a = self.rng.choice(c)
        h, f = self.hosts[hn], self.rng.choice(FOREIGN)
        self.agent_call(h, self.gpu_path(h, a), AGENT + ".Gpu", "Claim", "s", f)
        group = self.snap["agents"][hn][a]["IommuGroup"]
        for b, g in self.snap["agents"][hn].items():
            if g["IommuGroup"] == group:
                self.foreign[(hn, b)] = f
        return f"foreign VM {f[:8]} claims {hn} {a}"

    def op_foreign_release(self):
        hn, a = self.rng.choice(sorted(k for k in self.foreign if self.hosts[k[0]].live))
        h, f = self.hosts[hn], self.foreign[(hn, a)]
        self.agent_call(h, self.gpu_path(h, a), AGENT + ".Gpu", "Release", "s", f)
        group = self.snap["agents"][hn][a]["IommuGroup"]
        for b, g in self.snap["agents"][hn].items():
            if g["IommuGroup"] == group:
                self.foreign.pop((hn, b), None)
        return f"foreign VM {f[:8]} releases {hn} {a}"

    def choices(self):
        live = [h for h in self.hosts.values() if h.live]
        ops = [(self.op_power_on, 14), (self.op_power_off, 8), (self.op_set_gpus, 7), (self.op_set_affinity, 3),
               (self.op_enter, 2.5), (self.op_exit, 3), (self.op_restart_clusterd, 0.7),
               (self.op_kill_clusterd_during, 1.2)]
        if len(self.vms) < MAX_VMS:
            ops.append((self.op_create, 4 if len(self.vms) < 6 else 2))
        if len(self.vms) > 8 and any(v["Power"] == "off" for v in self.snap["vms"].values()):
            ops.append((self.op_delete, 1))
        if live:
            ops += [(self.op_kill_agent, 1.2), (self.op_bus_bounce, 1)]
        if any(h.spec and h.agent is None for h in self.hosts.values()):
            ops.append((self.op_start_agent, 5))
        if self.reflashable():
            ops.append((self.op_reflash, 1.2))
        if any(self.free_gpus(h.name) for h in live if not h.maint):
            ops.append((self.op_foreign_claim, 0.6))
        if any(self.hosts[k[0]].live for k in self.foreign):
            ops.append((self.op_foreign_release, 1))
        if not self.vms:
            ops = [(self.op_create, 1)]
        return ops

    def run(self):
        self.setup()
        self.settle()
        for self.step in range(1, STEPS + 1):
            ops = self.choices()
            op = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
            name = op.__name__[3:]
            self.ops[name] += 1
            self.settle_extra = None
            # The agents' maintenance flags and the aggregator's whole GPU list (models, owners) are read after
            # the operations that may change them and every 10th step; the other steps compare counts.
            self.read_all = name in ("enter", "exit", "kill_clusterd_during", "start_agent", "bus_bounce",
                                     "reflash", "restart_clusterd") or self.step % 10 == 0
            self.history.append(f"{self.step}: {name} ...")
            t0 = time.monotonic()
            text = op()
            self.history[-1] = f"{self.step}: {text}"
            t1 = time.monotonic()
            self.settle(self.settle_extra)
            self.op_time[name] += t1 - t0
            self.settle_time[name] += time.monotonic() - t1


def tail(path, n):
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError:
        return ""


def main():
    # meson's timeout (SIGTERM) and ^C end the run through the cleanup below: no daemon left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    m = Model()
    started = time.monotonic()
    ok = True
    try:
        m.run()
    except (Failure, BusError, subprocess.CalledProcessError) as e:
        ok = False
        msg = e.message if isinstance(e, BusError) else str(e)
        print(f"not ok 1 - model run, seed {SEED}, failed at step {m.step} of {STEPS}")
        print("# " + msg.replace("\n", "\n# "))
        print(f"# reproduce: GPUPASS_MODEL_SEED={SEED} meson test -C BUILD cluster-model")
        print("# the last steps:")
        for line in m.history:
            print(f"#   {line}")
        print("# --- aggregator log (tail) ---")
        print("# " + tail(os.path.join(m.dir, "agg.log"), 40).replace("\n", "\n# "))
        for h in m.hosts.values():
            t = tail(os.path.join(h.dir, "agent.log"), 8)
            if t:
                print(f"# --- agent {h.name} (tail) ---")
                print("# " + t.replace("\n", "\n# "))
    finally:
        m.cleanup()
    elapsed = time.monotonic() - started
    if ok:
        print(f"ok 1 - model run, seed {SEED}: {STEPS} steps, {m.checks} quiescent checks, all invariants held")
    print(f"# seed {SEED}, {m.step} steps, {m.checks} checks, {elapsed:.0f} s")
    print("# operations: " + ", ".join(f"{k} {v}" for k, v in sorted(m.ops.items())))
    print("# outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(m.outcomes.items())))
    print(f"# snapshots read: {m.polls}; seconds per operation (call, then settling): " + ", ".join(
        f"{k} {m.op_time[k]:.1f}+{m.settle_time[k]:.1f}" for k in sorted(m.op_time)))
    print("# compared: " + ", ".join(f"{k} {v}" for k, v in sorted(m.compared.items())))
    reports = []
    for root, _, files in os.walk(m.dir):
        for f in files:
            if f.endswith(".log") and re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:",
                                                open(os.path.join(root, f), errors="replace").read()):
                reports.append(os.path.join(root, f))
    for r in reports:
        print(f"not ok 2 - sanitizer report in {r}")
        print("# " + tail(r, 60).replace("\n", "\n# "))
    if not reports:
        print("ok 2 - no sanitizer report in any daemon log")
    print("1..2")
    shutil.rmtree(m.dir, ignore_errors=True)
    return 0 if ok and not reports else 1


if __name__ == "__main__":
    sys.exit(main())
