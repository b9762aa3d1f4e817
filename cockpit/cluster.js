/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cluster page, over org.gpupass.cluster1. All of it comes from the ObjectManager at /org/gpupass/cluster1:
 * GetManagedObjects once, then InterfacesAdded, InterfacesRemoved and every PropertiesChanged below it. Host
 * objects carry their host's GPUs (the Gpus property, ListGpus' records of that host), Vm objects the
 * registry. Each change updates the rows it concerns, cell by cell. No timer, no list call.
 */
import { h, mib, label, button, actionButton, KeyedTable, errorAlert, dialog } from "./ui.js";
import { parseRequests, formatRequests, reconfigureModel } from "./requests.js";

const ROOT = "/org/gpupass/cluster1";
const MANAGER = "org.gpupass.cluster1.Manager";
const HOST = "org.gpupass.cluster1.Host";
const VM = "org.gpupass.cluster1.Vm";
const PROPERTIES = "org.freedesktop.DBus.Properties";
const OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager";

/* Cockpit gives a variant as { t: signature, v: value }. */
function unwrap(props) {
    const out = {};
    for (const [name, variant] of Object.entries(props)) out[name] = variant.v;
    return out;
}

/* sd_bus_path_encode(): [A-Za-z0-9] kept (not a leading digit), everything else _XX; "" is "_". */
function pathEncode(s) {
    if (s === "") return "_";
    let out = "";
    for (let i = 0; i < s.length; i++) {
        const c = s[i];
        if (/[A-Za-z]/.test(c) || (i > 0 && /[0-9]/.test(c))) out += c;
        else out += "_" + c.charCodeAt(0).toString(16).padStart(2, "0");
    }
    return out;
}

/* A ListVms entry as the Vm object's properties (Gpus aside: the page shows the GPUs a VM holds from the
 * hosts' GPUs, whose owner it is). */
function vmFromList([uuid, name, vcpus, memory, requests, affinity, power, host, flags]) {
    return {
        Uuid: uuid,
        Name: name,
        Vcpus: vcpus,
        MemoryMiB: memory,
        GpuRequests: requests,
        Affinity: affinity ? affinity.split(",") : [],
        Power: power,
        Host: host,
        Flags: flags,
        NeedsReconfiguration: reconfigureModel(flags) !== "",
    };
}

function unwrapInterfaces(ifaces) {
    const out = {};
    for (const [name, props] of Object.entries(ifaces)) out[name] = unwrap(props);
    return out;
}

const byName = (a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0);

const stateColor = {
    up: "green",
    maintenance: "orange",
    unreachable: "red",
    connecting: "grey",
    host: "green",
    vfio: "blue",
    claimed: "purple",
    missing: "red",
    unavailable: "red",
    on: "green",
    off: "grey",
};

export class ClusterPage {
    /* client: cockpit.dbus("org.gpupass.cluster1") on the system bus; admin: may act;
     * onHost(name): opens a host's page */
    constructor(client, admin, onHost) {
        this.client = client;
        this.admin = admin;
        this.onHost = onHost;
        this.hosts = new Map(); /* name -> Host properties */
        this.vms = new Map(); /* uuid -> Vm properties */
        this.gpus = new Map(); /* "host/address" -> a GPU as ListGpus gives it */
        this.held = new Map(); /* VM UUID -> the keys of the GPUs it owns */
        this.gpusOf = new Map(); /* host name -> the keys of its GPUs */
        this.loaded = false;
        this.buildTables();
        this.root = h(
            "div",
            { class: "gp-cluster", id: "cluster-page" },
            this.card("Hosts", "hosts", this.hostTable, null),
            this.card("GPUs", "gpus", this.gpuTable, null),
            this.card(
                "Virtual machines",
                "vms",
                this.vmTable,
                admin
                    ? h(
                          "button",
                          {
                              type: "button",
                              class: "gp-btn gp-btn-primary",
                              id: "create-vm",
                              onclick: () => this.createVm(),
                          },
                          "Create VM",
                      )
                    : null,
            ),
        );
    }

    card(title, id, table, action) {
        this.counts = this.counts || {};
        this.counts[id] = h("span", { class: "gp-count", id: id + "-count" });
        return h(
            "section",
            { class: "gp-card", id: id + "-card" },
            h(
                "header",
                { class: "gp-card-header" },
                h("h2", null, title, " ", this.counts[id]),
                h("div", { class: "gp-toolbar" }, table.filterInput, action),
            ),
            h("div", { class: "gp-table-scroll" }, table.table),
            table.pagination,
        );
    }

    /*
     * The objects and their signals, asked for before the page exists: the PropertiesChanged and
     * ObjectManager signals first (the matches are in place before the calls), then the objects' values:
     * every Host's properties (GetAll) and the VMs from ListVms. Not GetManagedObjects: it reads the registry
     * once per VM object (0.5-0.8 s for 2,000 VMs here, README "Performance"), ListVms once for all. Signals
     * that arrive before the answers are kept and applied after them, in order: each carries a value at
     * least as new as the answers'.
     */
    static load(client) {
        const early = { signals: [], take: null };
        const deliver = data => (early.take ? early.take(data) : early.signals.push(data));
        early.subscriptions = [
            client.subscribe(
                { path_namespace: ROOT, interface: PROPERTIES, member: "PropertiesChanged" },
                (path, iface, signal, [changedIface, changed]) =>
                    deliver({ [path]: { [changedIface]: unwrap(changed) } }),
            ),
            client.subscribe(
                { path: ROOT, interface: OBJECT_MANAGER, member: "InterfacesAdded" },
                (path, iface, signal, [object, ifaces]) => deliver({ [object]: unwrapInterfaces(ifaces) }),
            ),
            client.subscribe(
                { path: ROOT, interface: OBJECT_MANAGER, member: "InterfacesRemoved" },
                (path, iface, signal, [object, ifaces]) =>
                    deliver({ [object]: Object.fromEntries(ifaces.map(i => [i, null])) }),
            ),
        ];
        early.vms = client.call(ROOT, MANAGER, "ListVms", [], { timeout: 600000 });
        early.hosts = client.call(ROOT, MANAGER, "ListHosts", []).then(([hosts]) =>
            Promise.all(
                hosts.map(host => {
                    const path = ROOT + "/host/" + pathEncode(host[0]);
                    return client
                        .call(path, PROPERTIES, "GetAll", [HOST])
                        .then(([props]) => [path, unwrap(props)]);
                }),
            ),
        );
        return early;
    }

    /* Everything the page needs, then live: resolves once the first complete render is in the DOM. */
    start(early) {
        early = early || ClusterPage.load(this.client);
        return Promise.all([early.hosts, early.vms]).then(([hosts, [vms]]) => {
            performance.mark("gpupass-data");
            const data = {};
            for (const [path, props] of hosts) data[path] = { [HOST]: props };
            for (const v of vms) data[ROOT + "/vm/" + pathEncode(v[0])] = { [VM]: vmFromList(v) };
            this.onNotify(data);
            for (const signal of early.signals) this.onNotify(signal);
            early.take = d => this.onNotify(d);
            this.loaded = true;
            this.renderAll();
            performance.mark("gpupass-dom");
        });
    }

    onNotify(data) {
        for (const [path, ifaces] of Object.entries(data)) {
            if (HOST in ifaces) {
                const name = this.hostNameOf(path, ifaces[HOST]);
                if (ifaces[HOST] === null) {
                    this.hosts.delete(name);
                    this.setHostGpus(name, []);
                    if (this.loaded) this.hostTable.remove(name);
                } else {
                    const host = { ...this.hosts.get(name), ...ifaces[HOST] };
                    this.hosts.set(name, host);
                    if ("Gpus" in ifaces[HOST]) this.setHostGpus(name, ifaces[HOST].Gpus);
                    if (this.loaded) this.hostTable.update(name, host);
                }
            }
            if (VM in ifaces) {
                const uuid = this.vmUuidOf(path, ifaces[VM]);
                if (ifaces[VM] === null) {
                    this.vms.delete(uuid);
                    if (this.loaded) this.vmTable.remove(uuid);
                } else {
                    const changed = ifaces[VM];
                    const vm = { ...this.vms.get(uuid), ...changed };
                    this.vms.set(uuid, vm);
                    if (this.loaded) this.vmTable.update(uuid, vm);
                    if ("Name" in changed && this.loaded)
                        this.gpuTable.refill(); /* owners are shown by name */
                }
            }
        }
        if (this.loaded) this.updateCounts();
    }

    /* A host's GPUs, all of them (its Gpus property): rows of GPUs gone go, the others are updated; the VMs
     * that gained or lost one get their GPUs cell redone. */
    setHostGpus(host, records) {
        const keys = new Set(records.map(gpuKey));
        const owners = new Set();
        for (const key of this.gpusOf.get(host) || []) {
            if (!keys.has(key)) {
                this.own(this.gpus.get(key)[5], key, false, owners);
                this.gpus.delete(key);
                if (this.loaded) this.gpuTable.remove(key);
            }
        }
        this.gpusOf.set(host, keys);
        for (const g of records) {
            const key = gpuKey(g);
            const old = this.gpus.get(key);
            if (old && JSON.stringify(old) === JSON.stringify(g)) continue;
            if (old) this.own(old[5], key, false, owners);
            this.own(g[5], key, true, owners);
            this.gpus.set(key, g);
            if (this.loaded) this.gpuTable.update(key, g);
        }
        for (const uuid of owners) {
            if (this.loaded && this.vms.has(uuid)) this.vmTable.update(uuid, this.vms.get(uuid));
        }
    }

    own(uuid, key, held, changed) {
        if (!uuid) return;
        let set = this.held.get(uuid);
        if (!set) this.held.set(uuid, (set = new Set()));
        if (held) set.add(key);
        else set.delete(key);
        changed.add(uuid);
    }

    /* The GPUs a VM holds now (addresses), from the hosts' GPUs whose owner it is. */
    heldBy(uuid) {
        const set = this.held.get(uuid);
        return set ? [...set].sort().map(key => key.slice(key.indexOf("/") + 1)) : [];
    }

    /* Paths are "host/NAME" and "vm/UUID" through sd_bus_path_encode; the first notify of an object carries
     * Name or Uuid, later ones only what changed, so the path is remembered. */
    hostNameOf(path, props) {
        this.hostPaths = this.hostPaths || new Map();
        if (props && props.Name) this.hostPaths.set(path, props.Name);
        return this.hostPaths.get(path);
    }

    vmUuidOf(path, props) {
        this.vmPaths = this.vmPaths || new Map();
        if (props && props.Uuid) this.vmPaths.set(path, props.Uuid);
        return this.vmPaths.get(path);
    }

    renderAll() {
        this.hostTable.replaceAll(this.hosts.values(), host => host.Name);
        this.gpuTable.replaceAll(this.gpus.values(), gpuKey);
        this.vmTable.replaceAll(this.vms.values(), vm => vm.Uuid);
        this.updateCounts();
    }

    updateCounts() {
        let free = 0;
        for (const g of this.gpus.values()) free += g[4] === "host" || g[4] === "vfio";
        this.counts.hosts.textContent = `${this.hosts.size}`;
        this.counts.gpus.textContent = `${free} free of ${this.gpus.size}`;
        const on = [...this.vms.values()].filter(v => v.Power === "on").length;
        this.counts.vms.textContent = `${on} on of ${this.vms.size}`;
        dialog.hostNames = [...this.hosts.keys()];
    }

    vmName(uuid) {
        const vm = this.vms.get(uuid);
        return vm ? vm.Name : "";
    }

    /* The models the cluster view has (the hosts' GPUs), for the set-GPUs dialog. */
    models() {
        return [...new Set([...this.gpus.values()].map(g => g[2]))].sort();
    }

    buildTables() {
        this.hostTable = new KeyedTable(this.hostColumns(), {
            compare: byName,
            empty: "No host configured",
            id: "hosts",
            search: host => `${host.Name} ${host.State} ${host.Address}`,
        });
        this.gpuTable = new KeyedTable(this.gpuColumns(), {
            compare: (a, b) => (gpuKey(a) < gpuKey(b) ? -1 : gpuKey(a) > gpuKey(b) ? 1 : 0),
            empty: "No GPU seen",
            id: "gpus",
            rowClass: g => (g[7] ? "gp-flagged" : ""),
            search: g => `${g[0]} ${g[1]} ${g[2]} ${g[4]} ${g[5]} ${this.vmName(g[5])}`,
        });
        this.vmTable = new KeyedTable(this.vmColumns(), {
            compare: byName,
            empty: "No VM in the registry",
            id: "vms",
            rowClass: vm => (vm.NeedsReconfiguration ? "gp-flagged" : ""),
            search: vm => `${vm.Name} ${vm.Uuid} ${vm.Host} ${vm.GpuRequests} ${vm.Power} ${vm.Flags}`,
        });
    }

    hostColumns() {
        const link = host =>
            h(
                "a",
                {
                    href: "#",
                    class: "gp-link",
                    dataset: { host: host.Name },
                    onclick: ev => {
                        ev.preventDefault();
                        this.onHost(host.Name);
                    },
                },
                host.Name,
            );
        const state = host =>
            h(
                "span",
                null,
                label(host.State, stateColor[host.State]),
                host.UnreachableReason
                    ? h("span", { class: "gp-muted" }, " " + host.UnreachableReason)
                    : null,
            );
        const columns = [
            {
                field: "name",
                title: "Host",
                cell: host => ({ node: link(host), text: host.Name, key: host.Name }),
            },
            {
                field: "state",
                title: "State",
                cell: host => ({
                    node: state(host),
                    text: host.State,
                    value: host.State,
                    key: host.State + host.UnreachableReason,
                }),
            },
            {
                field: "cpus",
                title: "CPUs free / total",
                cell: host => ({ text: `${host.FreeCpus} / ${host.CpuCount}`, value: host.CpuCount }),
            },
            {
                field: "memory",
                title: "Memory free / total",
                cell: host => ({
                    text: `${mib(host.FreeMemoryMiB)} / ${mib(host.MemoryMiB)}`,
                    value: host.MemoryMiB,
                }),
            },
            {
                field: "gpus",
                title: "GPUs free / total",
                cell: host => ({ text: `${host.FreeGpuCount} / ${host.GpuCount}`, value: host.GpuCount }),
            },
            { field: "maintenance", title: "Maintenance", cell: host => (host.Maintenance ? "yes" : "no") },
        ];
        if (this.admin) {
            columns.push({
                field: "actions",
                title: "",
                cell: host => ({ node: this.hostActions(host), key: String(host.Maintenance) }),
            });
        }
        return columns;
    }

    /* A GPU as ListGpus gives it: host, address, model, mode, state, owner, previous model, flagged, companions */
    gpuColumns() {
        const owner = uuid => (uuid ? this.vmName(uuid) || "foreign " + uuid : "");
        return [
            { field: "host", title: "Host", cell: g => g[0] },
            { field: "address", title: "Address", cell: g => g[1] },
            { field: "model", title: "Model", cell: g => g[2] },
            { field: "mode", title: "Mode", cell: g => g[3] },
            {
                field: "state",
                title: "State",
                cell: g => ({ node: label(g[4], stateColor[g[4]]), text: g[4], key: g[4] }),
            },
            { field: "owner", title: "Owner VM", cell: g => ({ text: owner(g[5]), value: g[5] }) },
            { field: "previous", title: "Previous model", cell: g => g[6] },
            { field: "companions", title: "Companions", cell: g => g[8].join(", ") },
        ];
    }

    vmColumns() {
        const affinity = vm => vm.Affinity || [];
        const columns = [
            {
                field: "name",
                title: "Name",
                cell: vm => ({
                    node: h("span", { title: vm.Uuid }, vm.Name),
                    text: vm.Name,
                    value: vm.Name,
                    key: vm.Name,
                }),
            },
            { field: "vcpus", title: "vCPUs", cell: vm => vm.Vcpus },
            {
                field: "memory",
                title: "Memory",
                cell: vm => ({ text: mib(vm.MemoryMiB), value: vm.MemoryMiB }),
            },
            { field: "requests", title: "GPU requests", cell: vm => vm.GpuRequests },
            {
                field: "affinity",
                title: "Affinity",
                cell: vm => ({ text: affinity(vm).join(", "), value: affinity(vm).join(",") }),
            },
            {
                field: "power",
                title: "Power",
                cell: vm => ({ node: label(vm.Power, stateColor[vm.Power]), text: vm.Power, key: vm.Power }),
            },
            { field: "host", title: "Host", cell: vm => vm.Host },
            { field: "gpus", title: "GPUs held", cell: vm => this.heldBy(vm.Uuid).join(", ") },
            { field: "flags", title: "Flags", cell: vm => this.vmFlags(vm) },
        ];
        if (this.admin)
            columns.push({
                field: "actions",
                title: "",
                cell: vm => ({ node: this.vmActions(vm), key: vm.Power + vm.Flags }),
            });
        return columns;
    }

    vmFlags(vm) {
        const model = reconfigureModel(vm.Flags);
        const restart = (vm.Flags || "").split(";").find(f => f.startsWith("restart:"));
        return {
            node: h(
                "span",
                null,
                model ? label("needs reconfiguration: " + model, "orange") : null,
                restart ? label("restarts on " + restart.slice(8), "blue") : null,
            ),
            text: vm.Flags,
            value: vm.Flags,
            key: vm.Flags,
        };
    }

    /* A refusal goes under the row whose button was pressed. */
    failed(table, key) {
        return ex => table.alertUnder(key, errorAlert(ex, [...this.hosts.keys()]));
    }

    call(method, args) {
        return this.client.call(ROOT, MANAGER, method, args, { timeout: 600000 });
    }

    hostActions(host) {
        const on = host.Maintenance;
        const fail = this.failed(this.hostTable, host.Name);
        return h(
            "span",
            { class: "gp-actions" },
            actionButton(
                on ? "End maintenance" : "Start maintenance",
                { dataset: { action: on ? "maintenance-off" : "maintenance-on" } },
                () => {
                    this.hostTable.clearAlert(host.Name);
                    return this.call(on ? "ExitHostMaintenance" : "EnterHostMaintenance", [host.Name]);
                },
                fail,
            ),
        );
    }

    vmActions(vm) {
        const fail = this.failed(this.vmTable, vm.Uuid);
        const run = method => () => {
            this.vmTable.clearAlert(vm.Uuid);
            return this.call(method, [vm.Uuid]);
        };
        const on = vm.Power === "on";
        return h(
            "span",
            { class: "gp-actions" },
            on
                ? actionButton("Power off", { dataset: { action: "power-off" } }, run("PowerOff"), fail)
                : actionButton(
                      "Power on",
                      { dataset: { action: "power-on" }, class: "gp-btn gp-btn-primary" },
                      run("PowerOn"),
                      fail,
                  ),
            button(
                vm.NeedsReconfiguration ? "GPUs (reflashed)" : "GPUs",
                {
                    dataset: { action: "set-gpus" },
                    class: "gp-btn " + (vm.NeedsReconfiguration ? "gp-btn-warning" : "gp-btn-secondary"),
                },
                () => this.setGpus(vm.Uuid),
            ),
            button("Affinity", { dataset: { action: "affinity" } }, () => this.setAffinity(vm.Uuid)),
            button("Delete", { dataset: { action: "delete" }, class: "gp-btn gp-btn-danger-secondary" }, () =>
                this.deleteVm(vm.Uuid),
            ),
        );
    }

    createVm() {
        const name = h("input", { type: "text", id: "vm-name", required: true, autocomplete: "off" });
        const vcpus = h("input", {
            type: "number",
            id: "vm-vcpus",
            min: 1,
            max: 4096,
            value: 4,
            required: true,
        });
        const memory = h("input", { type: "number", id: "vm-memory", min: 64, value: 8192, required: true });
        dialog(
            "Create VM",
            [field("Name", name), field("vCPUs", vcpus), field("Memory (MiB)", memory)],
            "Create",
            () => this.call("CreateVm", [name.value, Number(vcpus.value), Number(memory.value)]),
        );
        name.focus();
    }

    deleteVm(uuid) {
        const vm = this.vms.get(uuid);
        dialog(
            `Delete VM ${vm.Name}?`,
            h("p", null, "Its record and GPU requests are removed from the registry."),
            "Delete",
            () => this.call("DeleteVm", [uuid]),
            { danger: true },
        );
    }

    setAffinity(uuid) {
        const vm = this.vms.get(uuid);
        const chosen = new Set(vm.Affinity || []);
        const boxes = [...this.hosts.keys()]
            .sort()
            .map(name => h("input", { type: "checkbox", value: name, checked: chosen.has(name) }));
        dialog(
            `Affinity of ${vm.Name}`,
            [
                h("p", { class: "gp-help" }, "The hosts this VM may run on; none checked: any host."),
                h(
                    "div",
                    { class: "gp-checks", id: "affinity-hosts" },
                    boxes.map(b => h("label", null, b, " ", b.value)),
                ),
            ],
            "Save",
            () => this.call("SetVmAffinity", [uuid, boxes.filter(b => b.checked).map(b => b.value)]),
        );
    }

    /*
     * The GPU requests of a VM: one line per request, a count and the acceptable models (all GPUs of a request
     * are of one of them), models offered from the cluster view; or one specific GPU. A VM flagged after a
     * reflash gets the new model checked in each request (the models it asked for stay, unchecked).
     */
    setGpus(uuid) {
        const vm = this.vms.get(uuid);
        const newModel = reconfigureModel(vm.Flags);
        const models = this.models();
        const requests = parseRequests(vm.GpuRequests);
        for (const r of requests) {
            for (const m of r.models || []) if (!models.includes(m)) models.push(m);
        }
        if (newModel && !models.includes(newModel)) models.push(newModel);
        const list = h("div", { class: "gp-requests", id: "gpu-requests" });
        const addLine = r => {
            const count = h("input", {
                type: "number",
                min: 1,
                max: 64,
                value: r.count || 1,
                class: "gp-count-input",
                "aria-label": "Count",
            });
            const picked = new Set(newModel && r.models ? [newModel] : r.models || []);
            const boxes = models.map(m => h("input", { type: "checkbox", value: m, checked: picked.has(m) }));
            const line = h(
                "div",
                { class: "gp-request-line" },
                count,
                " \u00d7 ",
                h(
                    "span",
                    { class: "gp-checks" },
                    boxes.map(b =>
                        h(
                            "label",
                            { class: b.value === newModel ? "gp-new-model" : "" },
                            b,
                            " ",
                            b.value,
                            b.value === newModel ? " (after the reflash)" : "",
                        ),
                    ),
                ),
                button("Remove", { class: "gp-btn gp-btn-link" }, () => line.remove()),
            );
            line.request = () => ({
                count: Number(count.value),
                models: boxes.filter(b => b.checked).map(b => b.value),
            });
            list.append(line);
        };
        const addSpecific = r => {
            const select = h(
                "select",
                { "aria-label": "GPU" },
                [...this.gpus.values()]
                    .sort((a, b) => (gpuKey(a) < gpuKey(b) ? -1 : 1))
                    .map(g =>
                        h(
                            "option",
                            { value: `${g[0]}/${g[1]}`, selected: r.host === g[0] && r.address === g[1] },
                            `${g[0]} ${g[1]} (${g[2]})`,
                        ),
                    ),
            );
            const line = h(
                "div",
                { class: "gp-request-line" },
                "GPU ",
                select,
                button("Remove", { class: "gp-btn gp-btn-link" }, () => line.remove()),
            );
            line.request = () => {
                const [host, address] = select.value.split("/");
                return { host, address };
            };
            list.append(line);
        };
        for (const r of requests) (r.host !== undefined ? addSpecific : addLine)(r);
        if (requests.length === 0 && newModel) addLine({ count: 1, models: [newModel] });
        const notice = newModel
            ? h(
                  "div",
                  { class: "gp-alert gp-alert-warning" },
                  h("p", { class: "gp-alert-title" }, "Reflashed GPU"),
                  h(
                      "p",
                      null,
                      `A GPU of this VM is now ${newModel}; its GPU configuration must be set again before it powers on.`,
                  ),
              )
            : null;
        dialog(
            `GPUs of ${vm.Name}`,
            [
                notice,
                list,
                h(
                    "div",
                    { class: "gp-dialog-tools" },
                    button("Add request by model", { id: "add-model-request" }, () =>
                        addLine({ count: 1, models: [] }),
                    ),
                    button("Add a specific GPU", { id: "add-specific-request" }, () => addSpecific({})),
                ),
            ],
            "Save",
            () => this.call("SetVmGpus", [uuid, formatRequests([...list.children].map(l => l.request()))]),
        );
    }
}

function gpuKey(g) {
    return g[0] + "/" + g[1];
}

function field(text, input) {
    return h("label", { class: "gp-field" }, h("span", null, text), input);
}
