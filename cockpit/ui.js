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
        if (v === undefined || v === null || v === false) continue;
        if (k === "dataset") Object.assign(e.dataset, v);
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else if (k === "class") e.className = v;
        else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
        if (c === undefined || c === null || c === false) continue;
        e.append(c instanceof Node ? c : String(c));
    }
    return e;
}

export function mib(n) {
    const v = Number(n);
    if (v >= 1024) return (v / 1024).toLocaleString("en-US", { maximumFractionDigits: 1 }) + " GiB";
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
 * A table whose rows are kept by key.
 * columns: [{ field, title, cell(item) -> string | Node | { text, value, node, key } }].
 * Cells are compared with what they showed last, so an update writes only what changed. Each cell carries
 * data-field (and data-value when the text is formatted) for tests and scripts.
 *
 * Large tables are paged and filtered, as PatternFly's tables are: the DOM holds only the rows of the page
 * shown (a 2,000-VM registry is 50 rows to build and lay out, not 2,000), every item stays in memory and
 * sorted, and a change to an item on the page shown rewrites its cells and nothing else.
 */
export class KeyedTable {
    constructor(columns, { compare, rowClass, empty, search, pageSize = 50, id }) {
        this.columns = columns;
        this.compare = compare;
        this.rowClass = rowClass;
        this.search = search;
        this.pageSize = pageSize;
        this.page = 0;
        this.filter = "";
        this.items = new Map(); /* key -> item */
        this.order = []; /* keys, sorted by compare */
        this.shown = []; /* keys of the rows in the DOM */
        this.rows =
            new Map(); /* key -> { tr, item, cells: [{ td, shown }], after } for the rows in the DOM */
        this.tbody = h("tbody");
        this.emptyRow = h("tr", { class: "gp-empty" }, h("td", { colspan: columns.length }, empty || "None"));
        this.table = h(
            "table",
            { class: "gp-table" },
            h(
                "thead",
                null,
                h(
                    "tr",
                    null,
                    columns.map(c => h("th", { dataset: { field: c.field } }, c.title)),
                ),
            ),
            this.tbody,
        );
        this.pagination = this.buildPagination(id);
        this.filterInput = search
            ? h("input", {
                  type: "search",
                  class: "gp-filter",
                  placeholder: "Filter",
                  "aria-label": "Filter",
                  id: id ? id + "-filter" : undefined,
                  oninput: () => {
                      this.filter = this.filterInput.value.trim().toLowerCase();
                      this.page = 0;
                      this.render();
                  },
              })
            : null;
        this.tbody.append(this.emptyRow);
    }

    buildPagination(id) {
        this.rangeText = h("span", { class: "gp-pagination-range" });
        this.prevButton = h(
            "button",
            {
                type: "button",
                class: "gp-btn gp-btn-plain",
                "aria-label": "Previous page",
                onclick: () => {
                    this.page--;
                    this.render();
                },
            },
            "\u2039",
        );
        this.nextButton = h(
            "button",
            {
                type: "button",
                class: "gp-btn gp-btn-plain",
                "aria-label": "Next page",
                onclick: () => {
                    this.page++;
                    this.render();
                },
            },
            "\u203a",
        );
        const perPage = h(
            "select",
            {
                "aria-label": "Per page",
                onchange: () => {
                    this.pageSize = Number(perPage.value);
                    this.page = 0;
                    this.render();
                },
            },
            [20, 50, 100, 500].map(n =>
                h("option", { value: n, selected: n === this.pageSize }, `${n} per page`),
            ),
        );
        return h(
            "div",
            { class: "gp-pagination", id: id ? id + "-pagination" : undefined },
            this.rangeText,
            perPage,
            this.prevButton,
            this.nextButton,
        );
    }

    static render(cell, td, shown) {
        let text, value, node;
        if (cell instanceof Node) node = cell;
        else if (cell !== null && typeof cell === "object") ({ text, value, node } = cell);
        else text = cell === undefined || cell === null ? "" : String(cell);
        /* A column that builds nodes names what they depend on (key); without one they are rebuilt each time. */
        const key =
            (text ?? "") + "\u0000" + (value ?? "") + "\u0000" + (node ? (cell.key ?? Math.random()) : "");
        if (key === shown) return shown;
        td.replaceChildren(node || text);
        if (value !== undefined) td.dataset.value = value;
        else delete td.dataset.value;
        return key;
    }

    fill(row) {
        this.columns.forEach((c, i) => {
            const cell = row.cells[i];
            cell.shown = KeyedTable.render(c.cell(row.item), cell.td, cell.shown);
        });
        const cls = this.rowClass ? this.rowClass(row.item) : "";
        if (row.tr.className !== cls) row.tr.className = cls;
    }

    makeRow(key, item) {
        const tr = h("tr", { dataset: { key } });
        const row = {
            tr,
            item,
            after: null,
            cells: this.columns.map(c => ({
                td: h("td", { dataset: { field: c.field, label: c.title } }),
                shown: null,
            })),
        };
        tr.append(...row.cells.map(c => c.td));
        this.fill(row);
        return row;
    }

    matches(key) {
        return !this.filter || this.search(this.items.get(key)).toLowerCase().includes(this.filter);
    }

    /* The rows of the page shown, built or updated, in order; rows that left the page leave the DOM. */
    render() {
        const visible = this.filter ? this.order.filter(k => this.matches(k)) : this.order;
        const pages = Math.max(1, Math.ceil(visible.length / this.pageSize));
        this.page = Math.min(Math.max(this.page, 0), pages - 1);
        const first = this.page * this.pageSize;
        const keys = visible.slice(first, first + this.pageSize);
        const keep = new Set(keys);
        for (const [key, row] of this.rows) {
            if (!keep.has(key)) {
                row.tr.remove();
                if (row.after) row.after.remove();
                this.rows.delete(key);
            }
        }
        const same = keys.length === this.shown.length && keys.every((k, i) => k === this.shown[i]);
        const frag = same ? null : document.createDocumentFragment();
        for (const key of keys) {
            let row = this.rows.get(key);
            if (!row) {
                row = this.makeRow(key, this.items.get(key));
                this.rows.set(key, row);
            } else if (row.item !== this.items.get(key)) {
                row.item = this.items.get(key);
                this.fill(row);
            }
            if (frag) {
                frag.append(row.tr);
                if (row.after) frag.append(row.after);
            }
        }
        if (frag) this.tbody.replaceChildren(frag);
        if (keys.length === 0) this.tbody.replaceChildren(this.emptyRow);
        this.shown = keys;
        this.rangeText.textContent = visible.length
            ? `${first + 1} - ${first + keys.length} of ${visible.length}`
            : "0 of 0";
        this.prevButton.disabled = this.page === 0;
        this.nextButton.disabled = this.page >= pages - 1;
        this.pagination.hidden = visible.length <= 20 && this.pageSize >= 20;
    }

    /* Every item at once (first load, or a list call's answer). */
    replaceAll(items, keyOf) {
        this.items = new Map();
        for (const item of items) this.items.set(keyOf(item), item);
        this.order = [...this.items.keys()].sort((a, b) =>
            this.compare(this.items.get(a), this.items.get(b)),
        );
        this.render();
    }

    /* Where key belongs in order (binary search), the item being in items already. */
    position(key) {
        const item = this.items.get(key);
        let lo = 0,
            hi = this.order.length;
        while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (this.compare(this.items.get(this.order[mid]), item) < 0) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /* One item changed or appeared. The fast path, a row on the page whose place in the order stays: its cells. */
    update(key, item) {
        const old = this.items.get(key);
        this.items.set(key, item);
        if (old && this.compare(old, item) === 0) {
            const row = this.rows.get(key);
            /* With a filter, the item may come into or leave the page: then the page is laid out again. */
            if (!this.filter || this.matches(key) === !!row) {
                if (row) {
                    row.item = item;
                    this.fill(row);
                }
                return;
            }
            this.render();
            return;
        }
        if (old) this.order.splice(this.order.indexOf(key), 1);
        this.order.splice(this.position(key), 0, key);
        this.render();
    }

    remove(key) {
        if (!this.items.has(key)) return;
        this.items.delete(key);
        this.order.splice(this.order.indexOf(key), 1);
        this.render();
    }

    /* Refresh cells computed from other tables (a VM's name in a GPU's Owner column). */
    refill() {
        for (const row of this.rows.values()) this.fill(row);
    }

    /* An alert row right under the row whose action failed; replaced by the next one, dismissable. */
    alertUnder(key, node) {
        const row = this.rows.get(key);
        if (!row) return;
        if (row.after) row.after.remove();
        const close = button("\u00d7", { class: "gp-btn gp-btn-plain", "aria-label": "Dismiss" }, () => {
            row.after.remove();
            row.after = null;
        });
        row.after = h(
            "tr",
            { class: "gp-alert-row", dataset: { alertFor: key } },
            h("td", { colspan: this.columns.length }, node, close),
        );
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
    const shortName = name
        .replace(/^org\.gpupass\.Error\./, "")
        .replace(/^org\.freedesktop\.DBus\.Error\./, "");
    const message = (ex && ex.message) || String(ex);
    const body = h("div", { class: "gp-alert-body" });
    const stays = message.indexOf("it stays off.");
    if (shortName === "NoHostAvailable" && stays >= 0) {
        const head = message.slice(0, stays + "it stays off.".length);
        const items = splitHostReasons(message.slice(head.length), hostNames || []);
        body.append(
            h("p", null, head),
            h(
                "ul",
                { class: "gp-reasons" },
                items.map(([host, why]) =>
                    h("li", { dataset: { host } }, h("strong", null, host), ": ", why),
                ),
            ),
        );
    } else {
        body.append(h("p", null, message));
    }
    return h(
        "div",
        { class: "gp-alert gp-alert-danger", role: "alert", dataset: { error: name } },
        h("p", { class: "gp-alert-title" }, shortName),
        body,
    );
}

export function splitHostReasons(text, hostNames) {
    const out = [];
    const names = new Set(hostNames);
    for (const part of text.split(";")) {
        const m = part.match(/^\s*([A-Za-z0-9_.-]+): (.*)$/s);
        if (m && (names.has(m[1]) || names.size === 0)) out.push([m[1], m[2].trim()]);
        else if (out.length && part.trim()) out[out.length - 1][1] += ";" + part;
    }
    return out;
}

/*
 * A modal dialog (PatternFly's look): title, body, the primary action and Cancel. primary(dialog) returns a
 * promise; a rejection is shown inside the dialog, which stays open, so the operator can correct it.
 */
export function dialog(title, body, primaryText, primary, { danger } = {}) {
    const alertBox = h("div", { class: "gp-dialog-alert" });
    const ok = h(
        "button",
        {
            type: "submit",
            class: "gp-btn " + (danger ? "gp-btn-danger" : "gp-btn-primary"),
            dataset: { action: "dialog-ok" },
        },
        primaryText,
    );
    const cancel = h(
        "button",
        { type: "button", class: "gp-btn gp-btn-link", dataset: { action: "dialog-cancel" } },
        "Cancel",
    );
    const form = h(
        "form",
        { method: "dialog", class: "gp-dialog-form" },
        h("header", null, h("h2", null, title)),
        h("div", { class: "gp-dialog-body" }, body),
        alertBox,
        h("footer", null, ok, cancel),
    );
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
            .finally(() => {
                ok.disabled = false;
            });
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
            .finally(() => {
                b.disabled = false;
            });
    });
    return b;
}
