# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run by bench-cockpit.sh: fills the registry (BENCH_VMS VMs, one GPU each, a fifth on), then measures in
headless Chromium (1) the cluster page's first complete render: from navigation start to the page's
"gpupass-rendered" mark (performance.getEntriesByName), checked against the row counts, and (2) the time from a
PropertiesChanged signal to the changed row: the signal's arrival at a second client of the same bus (GDBus,
here) to the MutationObserver callback for that row and to the task after the next animation frame (the row on
screen: that frame has been laid out and painted).
Both clocks are the machine's wall clock (time.time() and performance.timeOrigin + performance.now())."""
import os
import random
import statistics
import threading
import time

from gi.repository import Gio, GLib

from browser import chromium, open_page, table, wait

NAME, CM, MANAGER = "org.gpupass.cluster1", "/org/gpupass/cluster1", "org.gpupass.cluster1.Manager"
VMS = int(os.environ["BENCH_VMS"])
HOSTS = int(os.environ["BENCH_HOSTS_N"])
CHANGES = int(os.environ["BENCH_CHANGES"])
bus = Gio.DBusConnection.new_for_address_sync(
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"],
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
    None,
    None,
)
signals = []  # (time.time(), path, changed property names)


def call(method, signature=None, *args, timeout=120000):
    params = GLib.Variant(f"({signature})", args) if signature else None
    return bus.call_sync(
        NAME, CM, MANAGER, method, params, None, Gio.DBusCallFlags.NONE, timeout, None
    ).unpack()


def on_signal(connection, sender, path, iface, member, params):
    signals.append((time.time(), path, list(params.unpack()[1].keys())))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(values):
    return (
        f"p50 {statistics.median(values):.1f} ms, p90 {percentile(values, 90):.1f} ms, "
        f"max {max(values):.1f} ms (n={len(values)})"
    )


def fill():
    have = len(call("ListVms")[0])
    model = call("ListGpus")[0][0][2]
    start = time.monotonic()
    for i in range(have, VMS):
        uuid = call("CreateVm", "sut", f"bench-{i:04d}", 2, 4096)[0]
        call("SetVmGpus", "ss", uuid, f"1:{model}")
    made = time.monotonic() - start
    vms = sorted(call("ListVms")[0], key=lambda v: v[1])
    start = time.monotonic()
    for v in vms[::5]:  # every fifth, so that each page of the VM table has VMs on and off
        if v[6] != "on":
            call("PowerOn", "s", v[0])
    print(
        f"registry: {VMS} VMs ({VMS - have} created in {made:.1f} s), {VMS // 5} on "
        f"(powered on in {time.monotonic() - start:.1f} s), {HOSTS} hosts, {len(call('ListGpus')[0])} GPUs"
    )


OBSERVE = """
window.benchSeen = [];
const epoch = () => performance.timeOrigin + performance.now();
const page = window.gpupassCluster;
const onNotify = page.onNotify.bind(page);
page.onNotify = data => { window.benchSeen.push({ notify: epoch(), paths: Object.keys(data) }); onNotify(data); };
new MutationObserver(records => {
    const t = epoch();
    const keys = new Set();
    for (const r of records) {
        const tr = (r.target.nodeType === 1 ? r.target : r.target.parentElement).closest('tr[data-key]');
        if (tr) keys.add(tr.dataset.key);
    }
    const entry = { mutation: t, keys: [...keys] };
    window.benchSeen.push(entry);
    requestAnimationFrame(() => setTimeout(() => { entry.frame = epoch(); }));
}).observe(document.getElementById('main'), { subtree: true, childList: true, characterData: true });
"""


def mutation_for(driver, key, after):
    seen = driver.execute_script("return window.benchSeen")
    for e in seen:
        if "mutation" in e and key in e["keys"] and e["mutation"] >= after * 1000 and "frame" in e:
            return e
    return None


def notify_before(driver, mutation):
    seen = driver.execute_script("return window.benchSeen")
    times = [e["notify"] for e in seen if "notify" in e and e["notify"] <= mutation]
    return times[-1] if times else None


def measure_vm_rows(driver, vms):
    """SetVmResources on an off VM: its Vm object's PropertiesChanged (Vcpus, MemoryMiB) -> its row."""
    to_dom, to_frame, in_page = [], [], []
    vcpus = {vm[0]: vm[2] for vm in vms}
    for k in range(CHANGES):
        vm = random.choice(vms)
        vcpus[vm[0]] = 3 if vcpus[vm[0]] != 3 else 2  # always a change, so always a signal
        signals.clear()
        t_call = time.time()
        call("SetVmResources", "sut", vm[0], vcpus[vm[0]], vm[3])
        sig = wait(driver, "signal", lambda: [s for s in signals if "Vcpus" in s[2]], 5)
        entry = wait(driver, "row", lambda: mutation_for(driver, vm[0], t_call), 5)
        if not sig or not entry:
            print(f"change {k}: {'no signal' if not sig else 'no row change'} for {vm[1]}")
            continue
        t0 = sig[0][0] * 1000
        to_dom.append(entry["mutation"] - t0)
        to_frame.append(entry["frame"] - t0)
        notified = notify_before(driver, entry["mutation"])
        if notified:
            in_page.append(entry["mutation"] - notified)
        time.sleep(0.1)
    return to_dom, to_frame, in_page


def measure_gpu_rows(driver, vms):
    """PowerOn/PowerOff of a VM: its host's PropertiesChanged (Gpus: the claimed GPU's state and owner) -> the
    GPU's row. The VMs go to the last host (affinity), which the GPU table is filtered to, so that their GPUs'
    rows are the ones shown."""
    last = f"h{HOSTS - 1:03d}"
    for vm in vms[: CHANGES // 2]:
        call("SetVmAffinity", "sas", vm[0], [last])
    box = driver.find_element("id", "gpus-filter")
    box.send_keys(last)
    to_frame = []
    for k in range(CHANGES // 2):
        vm = vms[k]
        for method in ("PowerOn", "PowerOff"):
            signals.clear()
            t_call = time.time()
            call(method, "s", vm[0])
            gpu = [g for g in call("ListGpus")[0] if g[5] == vm[0]] if method == "PowerOn" else gpu
            sig = wait(
                driver,
                "signal",
                lambda: [s for s in signals if "Gpus" in s[2] and s[1].endswith("/" + last)],
                5,
            )
            key = f"{gpu[0][0]}/{gpu[0][1]}"
            entry = wait(driver, "row", lambda: mutation_for(driver, key, t_call), 5)
            if sig and entry:
                to_frame.append(entry["frame"] - sig[0][0] * 1000)
            else:
                print(f"{method} {vm[1]}: {'no signal' if not sig else 'no row change'}")
            time.sleep(0.1)
    return to_frame


def aggregator_floor():
    """What the page waits for at least: GetManagedObjects (the watch's first answer) straight from the bus."""
    took = []
    for _ in range(5):
        start = time.monotonic()
        bus.call_sync(
            NAME,
            CM,
            "org.freedesktop.DBus.ObjectManager",
            "GetManagedObjects",
            None,
            None,
            Gio.DBusCallFlags.NONE,
            120000,
            None,
        )
        took.append((time.monotonic() - start) * 1000)
    print(
        f"GetManagedObjects from a GDBus client (the aggregator's part of the first render): {summary(took)}"
    )


def main():
    fill()
    aggregator_floor()
    bus.signal_subscribe(
        NAME,
        "org.freedesktop.DBus.Properties",
        "PropertiesChanged",
        None,
        None,
        Gio.DBusSignalFlags.NONE,
        on_signal,
    )
    threading.Thread(target=GLib.MainLoop().run, daemon=True).start()
    driver = chromium()
    url = os.environ["COCKPIT_URL_ROOT"]
    try:
        renders = []
        for attempt in range(6):
            if not open_page(driver, url, "cluster"):
                print("the page did not render")
                return 1
            marks = driver.execute_script(
                """return ['gpupass-data', 'gpupass-dom', 'gpupass-rendered', 'cockpit'].map(n =>
                n === 'cockpit' ? performance.getEntriesByType('resource').find(e => e.name.endsWith('cockpit.js')).responseEnd
                                : performance.getEntriesByName(n)[0].startTime)"""
            )
            rows = driver.execute_script(
                """return ['hosts', 'gpus', 'vms'].map(t =>
                Number(document.querySelector('#' + t + '-pagination .gp-pagination-range').textContent.split(' of ')[1]))"""
            )
            shown = [len(table(driver, c)) for c in ("hosts-card", "gpus-card", "vms-card")]
            print(
                f"load {attempt + 1}: cockpit.js loaded at {marks[3]:.0f} ms, data in at {marks[0]:.0f} ms, DOM built at "
                f"{marks[1]:.0f} ms, on screen at {marks[2]:.0f} ms after navigation start; rows: {rows[0]} hosts, "
                f"{rows[1]} GPUs, {rows[2]} VMs (rows in the DOM: {shown})"
            )
            if rows != [HOSTS, HOSTS * 8, VMS]:
                print("  incomplete render")
            elif attempt > 0:  # the first load also warms the bridge's and the browser's caches
                renders.append(marks[2])
        print(f"first complete render (loads 2-6): {summary(renders)} (goal <= 1000 ms)")
        driver.execute_script(OBSERVE)
        shown = {r["key"] for r in table(driver, "vms-card")}  # the page shown: the first 50 by name
        off = [v for v in call("ListVms")[0] if v[6] == "off" and v[0] in shown]
        to_dom, to_frame, in_page = measure_vm_rows(driver, off)
        print(f"PropertiesChanged of a Vm -> its row changed in the DOM: {summary(to_dom)}")
        print(
            f"PropertiesChanged of a Vm -> the next frame (row on screen): {summary(to_frame)} (goal <= 100 ms)"
        )
        if in_page:
            print(f"  of which in the page (notify handler -> DOM): {summary(in_page)}")
        gpu = measure_gpu_rows(driver, off)
        if gpu:
            print(
                f"PropertiesChanged of a Host's Gpus (a claim, a release) -> the GPU's row on screen: {summary(gpu)}"
            )
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
