/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The host page, over one host's org.gpupass.agent1: every GPU from a watch on the ObjectManager at
 * /org/gpupass/agent1 (GetManagedObjects, then InterfacesAdded/InterfacesRemoved and PropertiesChanged, as
 * "notify"), the Manager's properties from a watch on its path, and the IdentityChanged signal (a reflash)
 * shown as a notice.
 * Actions for administrators: Prepare, Return to host, the maintenance flag.
 */
import { h, mib, label, actionButton, KeyedTable, errorAlert } from "./ui.js";

const ROOT = "/org/gpupass/agent1";
const MANAGER = "org.gpupass.agent1.Manager";
const GPU = "org.gpupass.agent1.Gpu";

const stateColor = { host: "green", vfio: "blue", claimed: "purple", missing: "red", unavailable: "red" };

export class HostPage {
    /* connect(): a new cockpit.dbus("org.gpupass.agent1", ...) for that host; admin: may act; title: its name;
     * vmNames: VM UUID -> name as the aggregator knew them when the page opened (an owner is shown by name, its
     * UUID beside) */
    constructor(connect, admin, title, vmNames) {
        this.vmNames = vmNames;
        this.client = connect();
        this.managerClient = connect();
        this.admin = admin;
        this.manager = null;
        this.gpus = new Map(); /* path -> Gpu properties */
        this.loaded = false;
        const columns = [
            { field: "address", title: "Address", cell: g => g.Address },
            {
                field: "model",
                title: "Model",
                cell: g => ({
                    node: h(
                        "span",
                        null,
                        g.Model,
                        g.PreviousModel
                            ? h("span", { class: "gp-muted" }, " (was " + g.PreviousModel + ")")
                            : null,
                    ),
                    text: g.Model,
                    value: g.Model,
                    key: g.Model + g.PreviousModel,
                }),
            },
            { field: "mode", title: "Mode", cell: g => g.Mode },
            { field: "iommu", title: "IOMMU group", cell: g => (g.IommuGroup < 0 ? "none" : g.IommuGroup) },
            { field: "companions", title: "Companions", cell: g => (g.Companions || []).join(", ") },
            { field: "driver", title: "Driver", cell: g => g.Driver || "none" },
            {
                field: "state",
                title: "State",
                cell: g => ({ node: label(g.State, stateColor[g.State]), text: g.State, key: g.State }),
            },
            {
                field: "owner",
                title: "Owner VM",
                cell: g => ({
                    text: this.vmNames.has(g.Owner) ? `${this.vmNames.get(g.Owner)} (${g.Owner})` : g.Owner,
                    value: g.Owner,
                }),
            },
            { field: "problem", title: "Problem", cell: g => g.Problem },
        ];
        if (admin)
            columns.push({
                field: "actions",
                title: "",
                cell: g => ({ node: this.gpuActions(g), key: g.State + this.maintenance() }),
            });
        this.table = new KeyedTable(columns, {
            compare: (a, b) => (a.Address < b.Address ? -1 : a.Address > b.Address ? 1 : 0),
            empty: "No GPU on this host",
            rowClass: g => (g.NeedsReconfiguration ? "gp-flagged" : ""),
        });
        this.summary = h("dl", { class: "gp-summary", id: "host-summary" });
        this.notices = h("div", { class: "gp-notices", id: "host-notices" });
        this.hostAlert = h("div", { id: "host-alert" });
        this.maintenanceAction = h("span", { id: "host-maintenance-action" });
        this.title = h("h2", null, title || "This host");
        this.root = h(
            "div",
            { class: "gp-host", id: "host-page" },
            h(
                "section",
                { class: "gp-card", id: "host-card" },
                h("header", { class: "gp-card-header" }, this.title, this.maintenanceAction),
                this.summary,
                this.hostAlert,
                this.notices,
            ),
            h(
                "section",
                { class: "gp-card", id: "host-gpus-card" },
                h("header", { class: "gp-card-header" }, h("h2", null, "GPUs")),
                h("div", { class: "gp-table-scroll" }, this.table.table),
                this.table.pagination,
            ),
        );
    }

    maintenance() {
        return this.manager ? this.manager.Maintenance : false;
    }

    start() {
        this.client.addEventListener("notify", (ev, data) => this.onNotify(data));
        this.client.subscribe(
            { path: ROOT, interface: MANAGER, member: "IdentityChanged" },
            (path, iface, signal, [gpu, oldModel, newModel]) =>
                this.onIdentityChanged(gpu, oldModel, newModel),
        );
        /* GetManagedObjects lists the objects below the ObjectManager, not the Manager at its own path: that
         * one is watched by its path (GetAll, then its PropertiesChanged), on a channel of its own, since the
         * bridge takes a path inside a watched namespace as known from GetManagedObjects. */
        this.managerClient.addEventListener("notify", (ev, data) => this.onNotify(data));
        return Promise.all([
            this.client.watch({ path_namespace: ROOT }),
            this.managerClient.watch({ path: ROOT, interface: MANAGER }),
        ]).then(() => {
            this.loaded = true;
            this.table.replaceAll(this.gpus.values(), g => g.Address);
            this.renderManager();
        });
    }

    onNotify(data) {
        let managerChanged = false;
        for (const [path, ifaces] of Object.entries(data)) {
            if (MANAGER in ifaces && ifaces[MANAGER]) {
                this.manager = { ...this.manager, ...ifaces[MANAGER] };
                managerChanged = true;
            }
            if (GPU in ifaces) {
                const old = this.gpus.get(path);
                if (ifaces[GPU] === null) {
                    this.gpus.delete(path);
                    if (this.loaded && old) this.table.remove(old.Address);
                } else {
                    const gpu = { ...old, ...ifaces[GPU] };
                    this.gpus.set(path, gpu);
                    if (this.loaded) this.table.update(gpu.Address, gpu);
                }
            }
        }
        if (this.loaded && managerChanged) {
            this.renderManager();
            this.table.refill(); /* Prepare is refused in maintenance: the buttons follow the flag */
        }
    }

    onIdentityChanged(path, oldModel, newModel) {
        const gpu = this.gpus.get(path);
        const text =
            `${gpu ? gpu.Address : path} was reflashed: ${oldModel} \u2192 ${newModel}. VMs that asked for ${oldModel} ` +
            "need their GPU configuration redone.";
        this.notices.prepend(
            h(
                "div",
                {
                    class: "gp-alert gp-alert-info",
                    role: "status",
                    dataset: { reflash: gpu ? gpu.Address : path },
                },
                h("p", { class: "gp-alert-title" }, "GPU reflashed"),
                h("p", null, text),
            ),
        );
    }

    renderManager() {
        const m = this.manager || {};
        const rows = [
            ["Hostname", m.Hostname],
            ["CPUs", m.CpuCount],
            ["Memory", m.MemoryMiB !== undefined ? mib(m.MemoryMiB) : ""],
            ["IOMMU", m.IommuEnabled ? "enabled" : "disabled"],
            ["Maintenance", m.Maintenance ? "on" : "off"],
            ["Agent version", m.Version],
        ];
        if (m.StateProblem) rows.push(["State file", m.StateProblem]);
        this.summary.replaceChildren(
            ...rows.flatMap(([k, v]) => [
                h("dt", null, k),
                h("dd", { dataset: { field: k.toLowerCase() } }, v ?? ""),
            ]),
        );
        if (this.admin) {
            const on = !!m.Maintenance;
            this.maintenanceAction.replaceChildren(
                actionButton(
                    on ? "End maintenance" : "Start maintenance",
                    { dataset: { action: on ? "maintenance-off" : "maintenance-on" } },
                    () => {
                        this.hostAlert.replaceChildren();
                        return this.client.call(ROOT, MANAGER, "SetMaintenance", [!on]);
                    },
                    ex => this.hostAlert.replaceChildren(errorAlert(ex)),
                ),
            );
        }
    }

    gpuActions(g) {
        const path = [...this.gpus.entries()].find(([, v]) => v === g || v.Address === g.Address)[0];
        const fail = ex => this.table.alertUnder(g.Address, errorAlert(ex));
        const run = method => () => {
            this.table.clearAlert(g.Address);
            return this.client.call(path, GPU, method, [], { timeout: 120000 });
        };
        const buttons = [];
        if (g.State === "host") {
            const prepare = actionButton("Prepare", { dataset: { action: "prepare" } }, run("Prepare"), fail);
            /* The agent refuses Prepare in maintenance (InMaintenance): say so rather than offer it. */
            if (this.maintenance()) {
                prepare.disabled = true;
                prepare.title = "Refused while the host is in maintenance";
            }
            buttons.push(prepare);
        }
        if (g.State === "vfio" || (g.State === "unavailable" && g.Driver === "vfio-pci"))
            buttons.push(
                actionButton("Return to host", { dataset: { action: "return" } }, run("ReturnToHost"), fail),
            );
        return h("span", { class: "gp-actions" }, buttons);
    }
}
