/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The gpupass page: the cluster view when org.gpupass.cluster1 is on the system bus, else this host's agent;
 * a host picked on the cluster page opens its agent at the address the aggregator reaches it by.
 * Routes (cockpit.location): "" the default, "host/NAME" a cluster host, "local" this machine's agent.
 */
import { ClusterPage } from "./cluster.js";
import { HostPage } from "./host.js";
import { h } from "./ui.js";

const CLUSTER = "org.gpupass.cluster1";
const CLUSTER_PATH = "/org/gpupass/cluster1";
const AGENT = "org.gpupass.agent1";
const AGENT_PATH = "/org/gpupass/agent1";
/* Only where the AdminGroup property cannot be read (a daemon older than this page): the default AdminGroup,
 * which the policy files (dbus/*.conf) name. */
const FALLBACK_ADMIN_GROUP = "gpupass";

/* The daemon's AdminGroup: its Manager's property, as configured; "" for none (root only). */
function readAdminGroup(client, path, service) {
    return client
        .call(path, "org.freedesktop.DBus.Properties", "Get", [service + ".Manager", "AdminGroup"])
        .then(
            ([variant]) => variant.v,
            () => FALLBACK_ADMIN_GROUP,
        );
}

/* callback() when a reload of the daemon changes its AdminGroup (PropertiesChanged). */
function onAdminGroupChanged(client, path, service, callback) {
    const match = { path, interface: "org.freedesktop.DBus.Properties", member: "PropertiesChanged" };
    client.subscribe(
        { ...match, arg0: service + ".Manager" },
        (_path, _iface, _signal, [, changed]) => {
            if ("AdminGroup" in changed) callback();
        },
    );
}

/* Administrative access: cockpit.permission({ admin: true }), which reloads the page when the user turns it on
 * or off (the page's channels then run as root, or no longer). Asked for once, at start. */
const superuser = cockpit.permission({ admin: true });
const superuserKnown = new Promise(resolve => {
    if (superuser.allowed !== null) resolve(superuser.allowed);
    else superuser.addEventListener("changed", () => resolve(superuser.allowed), { once: true });
});
/* Who the user is (uid, groups), asked for once. */
const userKnown = cockpit.user();

/*
 * May the session act on a daemon whose AdminGroup is `group`? ({ group, allowed }.) As the daemon and its bus
 * policy decide: root, or a member of that group; or a user whose Cockpit administrative access (superuser) is
 * on, since the page's calls then run as root. An empty AdminGroup leaves root and administrative access.
 * The group rule is cockpit.permission({ group })'s own, tested here on cockpit.user(): Cockpit 287's permission
 * object reloads the page whenever its answer differs from the superuser state, so a member of the group
 * without administrative access would see the page reload forever (the browser test's nobody in
 * AdminGroup=nogroup did).
 */
function mayAct(group) {
    const member = userKnown.then(
        user => user.id === 0 || (!!group && (user.groups || []).includes(group)),
        () => false,
    );
    return Promise.all([member, superuserKnown]).then(answers => ({
        group,
        allowed: answers.some(a => a === true),
    }));
}

/* What the page decided, also for the tests: who may act, and by which group. */
function setAdmin({ allowed, group }) {
    admin = allowed;
    document.body.dataset.admin = String(allowed);
    document.body.dataset.adminGroup = group;
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
    /* Who may act is the agent's AdminGroup: a reload that changes it opens the page again. */
    const probe = connect();
    onAdminGroupChanged(probe, AGENT_PATH, AGENT, () => document.body.dataset.ready && route());
    readAdminGroup(probe, AGENT_PATH, AGENT)
        .then(mayAct)
        .then(decision => {
            if (!current()) return;
            setAdmin(decision);
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
        });
}

let generation = 0; /* a route that a newer one replaced shows nothing more */

function route() {
    const mine = ++generation;
    const current = () => mine === generation;
    closeClients();
    delete document.body.dataset.ready;
    delete document.body.dataset.admin;
    delete document.body.dataset.adminGroup;
    const path = cockpit.location.path;
    const bus = cockpit.dbus("org.freedesktop.DBus", { bus: "system" });
    clients.push(bus);
    const client = cockpit.dbus(CLUSTER, busOptions(null));
    clients.push(client);
    /* The cluster's objects are asked for at once, alongside whether the aggregator runs and whether the
     * session may act, not after them: the first render waits for the slowest of the three only. */
    const early = path.length === 0 ? ClusterPage.load(client) : null;
    /* Likewise the aggregator's AdminGroup, which says who may act on the cluster. */
    const clusterAdmin = path.length === 0 ? readAdminGroup(client, CLUSTER_PATH, CLUSTER).then(mayAct) : null;
    /* The aggregator going away or coming back (the bus's NameOwnerChanged), or a reload that changes its
     * AdminGroup: the default view starts over from what is there. */
    if (path.length === 0) {
        const again = () => document.body.dataset.ready && route();
        bus.subscribe(
            {
                path: "/org/freedesktop/DBus",
                interface: "org.freedesktop.DBus",
                member: "NameOwnerChanged",
                arg0: CLUSTER,
            },
            again,
        );
        onAdminGroupChanged(client, CLUSTER_PATH, CLUSTER, again);
    }
    bus.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", [CLUSTER])
        .then(([clusterUp]) => {
            if (!current()) return;
            navigation(path, clusterUp);
            if (path[0] === "local" || (path.length === 0 && !clusterUp)) {
                openHost("This machine", null, null, current);
                return;
            }
            if (path[0] === "host") {
                const list = method => client.call(CLUSTER_PATH, "org.gpupass.cluster1.Manager", method, []);
                Promise.all([list("ListHosts"), list("ListVms")]).then(([[hosts], [vms]]) => {
                    if (!current()) return;
                    const host = hosts.find(x => x[0] === path[1]);
                    if (host)
                        openHost("Host " + host[0], host[1], new Map(vms.map(v => [v[0], v[1]])), current);
                    else show(message("Unknown host", `The aggregator has no host named ${path[1]}.`));
                });
                return;
            }
            return clusterAdmin.then(decision => {
                if (!current()) return;
                setAdmin(decision);
                const page = new ClusterPage(client, admin, name => cockpit.location.go(["host", name]));
                show(page.root);
                page.start(early).then(
                    () => current() && ready("cluster"),
                    ex => current() && show(message("Cluster", ex.message)),
                );
                window.gpupassCluster = page; /* for the benchmark and tests */
            });
        })
        .catch(ex => current() && show(message("No system bus", ex.message)));
}

cockpit.addEventListener("locationchanged", route);
route();
