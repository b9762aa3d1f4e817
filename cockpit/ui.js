/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DOM helpers shared by the cluster and host pages: element building, tables whose rows are kept by key and
 * updated cell by cell (a PropertiesChanged touches one row, never the table), the inline alert that shows a
 * D-Bus refusal next to the action that caused it, and modal dialogs.
 */

/* h("td", { class: "x", dataset: { field: "name" } }, "text", child...): an element. */
export function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false)
            continue;
        if (k === "dataset")
            Object.assign(e.dataset, v);
        else if (k.startsWith("on"))
            e.addEventListener(k.slice(2), v);
        else if (k === "class")
            e.className = v;
        else
            e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
        if (c === undefined || c === null || c === false)
            continue;
        e.append(c instanceof Node ? c : String(c));
    }
    return e;
}

export function mib(n) {
    const v = Number(n);
    if (v >= 1024)
        return (v / 1024).toLocaleString("en-US", { maximumFractionDigits: 1 }) + " GiB";
    return v.toLocaleString("en-US") + " MiB";
}

/* A label (PatternFly's pill) in one of the colours the stylesheet knows. */
export function label(text, color) {
    return h("span", { class: "gp-label gp-label-" + (color || "grey") }, text);
}

export function button(text, attrs, onclick) {
    return h("button", { type: "button", class: "gp-btn gp-btn-secondary", ...attrs, onclick }, text);
}

/*
 * A table whose rows are kept by key. columns: [{ field, title, cell(item) -> string | Node | { text, value, node } }].
 * Cells are compared with what they showed last, so an update writes only what changed. Each cell carries
 * data-field (and data-value when the text is formatted) for tests and scripts.
 */
export class KeyedTable {
    constructor(columns, { compare, rowClass, empty }) {
        this.columns = columns;
        this.compare = compare;
        this.rowClass = rowClass;
        this.rows = new Map(); /* key -> { tr, item, cells: [{ td, shown }] } */
        this.tbody = h("tbody");
        this.emptyRow = h("tr", { class: "gp-empty" }, h("td", { colspan: columns.length }, empty || "None"));
        this.table = h("table", { class: "gp-table" },
                       h("thead", null, h("tr", null, columns.map(c => h("th", { dataset: { field: c.field } }, c.title)))),
                       this.tbody);
        this.tbody.append(this.emptyRow);
    }

    static render(cell, td, shown) {
        let text, value, node;
        if (cell instanceof Node)
            node = cell;
        else if (cell !== null && typeof cell === "object")
            ({ text, value, node } = cell);
        else
            text = cell === undefined || cell === null ? "" : String(cell);
        /* Nodes are rebuilt by their column each time; compare by the key the column gives (text). */
        const key = (text ?? "") + "\u0000" + (value ?? "") + "\u0000" + (node ? (cell.key ?? Math.random()) : "");
        if (key === shown)
            return shown;
        td.replaceChildren(node || text);
        if (value !== undefined)
            td.dataset.value = value;
        else
            delete td.dataset.value;
        return key;
    }

    fill(tr, row, item) {
        this.columns.forEach((c, i) => {
            const cell = row.cells[i];
            cell.shown = KeyedTable.render(c.cell(item), cell.td, cell.shown);
        });
        const cls = this.rowClass ? this.rowClass(item) : "";
        if (tr.className !== cls)
            tr.className = cls;
    }

    makeRow(key, item) {
        const tr = h("tr", { dataset: { key } });
        const row = { tr, item, cells: this.columns.map(c => ({ td: h("td", { dataset: { field: c.field, label: c.title } }), shown: null })) };
        tr.append(...row.cells.map(c => c.td));
        this.fill(tr, row, item);
        return row;
    }

    /* Every item at once (first load, or a list call's answer): rows added, updated, removed, in order. */
    replaceAll(items, keyOf) {
        const keep = new Set();
        const sorted = [...items].sort(this.compare);
        const frag = document.createDocumentFragment();
        for (const item of sorted) {
            const key = keyOf(item);
            keep.add(key);
            let row = this.rows.get(key);
            if (row) {
                row.item = item;
                this.fill(row.tr, row, item);
            } else {
                row = this.makeRow(key, item);
                this.rows.set(key, row);
            }
            frag.append(row.tr);
            if (row.after)
                frag.append(row.after);
        }
        for (const [key, row] of this.rows) {
            if (!keep.has(key))
                this.dropRow(key, row);
        }
        this.tbody.replaceChildren(frag);
        if (this.rows.size === 0)
            this.tbody.append(this.emptyRow);
    }

    dropRow(key, row) {
        row.tr.remove();
        if (row.after)
            row.after.remove();
        this.rows.delete(key);
    }

    /* One item changed or appeared: its row only (a new row goes to its sorted place). */
    update(key, item) {
        let row = this.rows.get(key);
        if (row) {
            row.item = item;
            this.fill(row.tr, row, item);
            return row;
        }
        row = this.makeRow(key, item);
        this.rows.set(key, row);
        this.emptyRow.remove();
        let next = null;
        for (const other of this.rows.values()) {
            if (other !== row && this.compare(item, other.item) < 0 && (!next || this.compare(other.item, next.item) < 0))
                next = other;
        }
        this.tbody.insertBefore(row.tr, next ? next.tr : null);
        return row;
    }

    remove(key) {
        const row = this.rows.get(key);
        if (row)
            this.dropRow(key, row);
        if (this.rows.size === 0)
            this.tbody.append(this.emptyRow);
    }

    /* Refresh cells computed from other tables (a VM's name in a GPU's Owner column). */
    refill() {
        for (const row of this.rows.values())
            this.fill(row.tr, row, row.item);
    }

    /* An alert row right under the row whose action failed; replaced by the next one, dismissable. */
    alertUnder(key, node) {
        const row = this.rows.get(key);
        if (!row)
            return;
        if (row.after)
            row.after.remove();
        const close = button("\u00d7", { class: "gp-btn gp-btn-plain", "aria-label": "Dismiss" }, () => {
            row.after.remove();
            row.after = null;
        });
        row.after = h("tr", { class: "gp-alert-row", dataset: { alertFor: key } },
                      h("td", { colspan: this.columns.length }, node, close));
        row.tr.after(row.after);
    }

    clearAlert(key) {
        const row = this.rows.get(key);
        if (row && row.after) {
            row.after.remove();
            row.after = null;
        }
    }
}

/*
 * A refusal as the operator needs it: the error's short name and its message. NoHostAvailable's message
 * ("No host can run VM x; it stays off. alpha: why; beta: why;") becomes the sentence and a list, one item
 * per host, split at the names of the hosts the page knows (a reason may itself contain ';').
 */
export function errorAlert(ex, hostNames) {
    const name = (ex && ex.name) || (ex && ex.problem) || "Error";
    const shortName = name.replace(/^org\.gpupass\.Error\./, "").replace(/^org\.freedesktop\.DBus\.Error\./, "");
    const message = (ex && ex.message) || String(ex);
    const body = h("div", { class: "gp-alert-body" });
    const stays = message.indexOf("it stays off.");
    if (shortName === "NoHostAvailable" && stays >= 0) {
        const head = message.slice(0, stays + "it stays off.".length);
        const items = splitHostReasons(message.slice(head.length), hostNames || []);
        body.append(h("p", null, head), h("ul", { class: "gp-reasons" },
                                           items.map(([host, why]) => h("li", { dataset: { host } },
                                                                         h("strong", null, host), ": ", why))));
    } else {
        body.append(h("p", null, message));
    }
    return h("div", { class: "gp-alert gp-alert-danger", role: "alert", dataset: { error: name } },
             h("p", { class: "gp-alert-title" }, shortName), body);
}

export function splitHostReasons(text, hostNames) {
    const out = [];
    const names = new Set(hostNames);
    for (const part of text.split(";")) {
        const m = part.match(/^\s*([A-Za-z0-9_.-]+): (.*)$/s);
        if (m && (names.has(m[1]) || names.size === 0))
            out.push([m[1], m[2].trim()]);
        else if (out.length && part.trim())
            out[out.length - 1][1] += ";" + part;
    }
    return out;
}

/*
 * A modal dialog (PatternFly's look): title, body, the primary action and Cancel. primary(dialog) returns a
 * promise; a rejection is shown inside the dialog, which stays open, so the operator can correct it.
 */
export function dialog(title, body, primaryText, primary, { danger } = {}) {
    const alertBox = h("div", { class: "gp-dialog-alert" });
    const ok = h("button", { type: "submit", class: "gp-btn " + (danger ? "gp-btn-danger" : "gp-btn-primary"),
                             dataset: { action: "dialog-ok" } }, primaryText);
    const cancel = h("button", { type: "button", class: "gp-btn gp-btn-link", dataset: { action: "dialog-cancel" } },
                     "Cancel");
    const form = h("form", { method: "dialog", class: "gp-dialog-form" },
                   h("header", null, h("h2", null, title)), h("div", { class: "gp-dialog-body" }, body), alertBox,
                   h("footer", null, ok, cancel));
    const d = h("dialog", { class: "gp-dialog" }, form);
    cancel.addEventListener("click", () => d.close());
    d.addEventListener("close", () => d.remove());
    form.addEventListener("submit", ev => {
        ev.preventDefault();
        ok.disabled = true;
        alertBox.replaceChildren();
        Promise.resolve()
                .then(() => primary(d))
                .then(() => d.close())
                .catch(ex => alertBox.replaceChildren(errorAlert(ex, dialog.hostNames)))
                .finally(() => { ok.disabled = false });
    });
    document.body.append(d);
    d.showModal();
    return d;
}
dialog.hostNames = [];

/* A button that runs a call, is disabled while it runs and hands a refusal to onError. */
export function actionButton(text, attrs, run, onError) {
    const b = button(text, attrs, () => {
        b.disabled = true;
        Promise.resolve()
                .then(run)
                .catch(onError)
                .finally(() => { b.disabled = false });
    });
    return b;
}
