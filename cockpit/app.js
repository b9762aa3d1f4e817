/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The gpupass page: the cluster view when org.gpupass.cluster1 is on the system bus, else this host's agent;
 * a host picked on the cluster page opens its agent at the address the aggregator reaches it by.
 * Routes (cockpit.location): "" the default, "host/NAME" a cluster host, "local" this machine's agent.
 */
import { ClusterPage } from "./cluster.js";
import { HostPage } from "./host.js";
import { h } from "./ui.js";

/* The group the policy files (dbus/*.conf) let call the changing methods; root may always. */
const ADMIN_GROUP = "gpupass";
const CLUSTER = "org.gpupass.cluster1";
const AGENT = "org.gpupass.agent1";

/*
 * May the session act? As the bus policy decides: root, or a member of the admin group; or a user whose
 * Cockpit administrative access (superuser) is on, since the page's calls then run as root. Both are
 * cockpit.permission()'s own rules ({ group } and { admin }).
 */
function mayAct() {
    const perms = [cockpit.permission({ group: ADMIN_GROUP }), cockpit.permission({ admin: true })];
    const settled = p =>
        p.allowed !== null
            ? Promise.resolve(p.allowed)
            : new Promise(resolve => p.addEventListener("changed", () => resolve(p.allowed), { once: true }));
    return Promise.all(perms.map(settled)).then(allowed => allowed.some(a => a === true));
}

function busOptions(address) {
    /* superuser "try": with administrative access on, the calls go through Cockpit's root bridge */
    if (address === null) return { bus: "system", superuser: "try" };
    if (address.startsWith("ssh:")) return { bus: "system", host: address.slice(4), superuser: "try" };
    if (address.startsWith("machine:")) return null;
    return { bus: "none", address, superuser: "try" };
}

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let clients = [];
let admin = false;

function show(...nodes) {
    main.replaceChildren(...nodes);
}

function message(title, text) {
    return h(
        "section",
        { class: "gp-card gp-empty-state", id: "message" },
        h("h2", null, title),
        h("p", null, text),
    );
}

function closeClients() {
    for (const c of clients) c.close();
    clients = [];
}

/* The first complete render is on screen: the task after the next frame, so layout and paint are in it. */
function ready(kind) {
    requestAnimationFrame(() =>
        setTimeout(() => {
            performance.mark("gpupass-rendered");
            document.body.dataset.ready = kind;
        }),
    );
}

function navigation(path, clusterUp) {
    const tab = (text, to, current) =>
        h(
            "a",
            {
                href: "#",
                class: "gp-tab" + (current ? " gp-tab-current" : ""),
                dataset: { route: to.join("/") || "cluster" },
                onclick: ev => {
                    ev.preventDefault();
                    cockpit.location.go(to);
                },
            },
            text,
        );
    const items = [];
    if (clusterUp) items.push(tab("Cluster", [], path.length === 0));
    if (path[0] === "host") items.push(tab("Host " + path[1], path, true));
    items.push(tab("This machine", ["local"], path[0] === "local" || (!clusterUp && path.length === 0)));
    nav.replaceChildren(...items);
}

/* vmNames: VM UUID -> name, from the aggregator's registry when the host is one of its hosts; current(): the
 * route that opens it is still the latest */
function openHost(title, address, vmNames, current) {
    const options = busOptions(address);
    if (!options) {
        show(
            message(
                title,
                `The aggregator reaches this host by ${address}, which Cockpit cannot open; use gpupassctl -H or ` +
                    "open Cockpit on that host.",
            ),
        );
        ready("host");
        return;
    }
    const connect = () => {
        const client = cockpit.dbus(AGENT, options);
        clients.push(client);
        return client;
    };
    const page = new HostPage(connect, admin, title, vmNames || new Map());
    show(page.root);
    page.start().then(
        () => current() && ready("host"),
        ex => {
            if (!current()) return;
            show(message(title, `No gpupass agent answers there (${ex.message}).`));
            ready("host");
        },
    );
}

let generation = 0; /* a route that a newer one replaced shows nothing more */

function route() {
    const mine = ++generation;
    const current = () => mine === generation;
    closeClients();
    delete document.body.dataset.ready;
    const path = cockpit.location.path;
    const bus = cockpit.dbus("org.freedesktop.DBus", { bus: "system" });
    clients.push(bus);
    const client = cockpit.dbus(CLUSTER, busOptions(null));
    clients.push(client);
    /* The cluster's objects are asked for at once, alongside whether the aggregator runs and whether the
     * session may act, not after them: the first render waits for the slowest of the three only. */
    const early = path.length === 0 ? ClusterPage.load(client) : null;
    /* The aggregator going away or coming back (the bus's NameOwnerChanged): the default view starts over
     * from what is there. */
    if (path.length === 0) {
        bus.subscribe(
            {
                path: "/org/freedesktop/DBus",
                interface: "org.freedesktop.DBus",
                member: "NameOwnerChanged",
                arg0: CLUSTER,
            },
            () => {
                if (document.body.dataset.ready) route();
            },
        );
    }
    Promise.all([
        adminKnown,
        bus.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", [CLUSTER]),
    ])
        .then(([allowed, [clusterUp]]) => {
            if (!current()) return;
            admin = allowed;
            document.body.dataset.admin = String(allowed);
            navigation(path, clusterUp);
            if (path[0] === "local" || (path.length === 0 && !clusterUp)) {
                openHost("This machine", null, null, current);
                return;
            }
            if (path[0] === "host") {
                const list = method =>
                    client.call("/org/gpupass/cluster1", "org.gpupass.cluster1.Manager", method, []);
                Promise.all([list("ListHosts"), list("ListVms")]).then(([[hosts], [vms]]) => {
                    if (!current()) return;
                    const host = hosts.find(x => x[0] === path[1]);
                    if (host)
                        openHost("Host " + host[0], host[1], new Map(vms.map(v => [v[0], v[1]])), current);
                    else show(message("Unknown host", `The aggregator has no host named ${path[1]}.`));
                });
                return;
            }
            const page = new ClusterPage(client, admin, name => cockpit.location.go(["host", name]));
            show(page.root);
            page.start(early).then(
                () => current() && ready("cluster"),
                ex => current() && show(message("Cluster", ex.message)),
            );
            window.gpupassCluster = page; /* for the benchmark and tests */
        })
        .catch(ex => current() && show(message("No system bus", ex.message)));
}

const adminKnown = mayAct();
cockpit.addEventListener("locationchanged", route);
route();
