/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The aggregator's GPU request text (README "Registry"), as the set-GPUs dialog edits it: requests separated
 * by ';', each "COUNT:MODEL|MODEL..." (COUNT GPUs, all of one of the models) or "=HOST/ADDRESS" (one GPU).
 * The aggregator checks the text again (InvalidArgument); this only turns it into fields and back.
 */

export function parseRequests(text) {
    const out = [];
    for (const part of (text || "").split(";")) {
        const s = part.trim();
        if (!s) continue;
        if (s.startsWith("=")) {
            const slash = s.indexOf("/");
            out.push({ host: s.slice(1, slash), address: s.slice(slash + 1) });
            continue;
        }
        const colon = s.indexOf(":");
        out.push({
            count: Number(s.slice(0, colon)),
            models: s
                .slice(colon + 1)
                .split("|")
                .filter(m => m),
        });
    }
    return out;
}

export function formatRequests(requests) {
    return requests
        .map(r => (r.host !== undefined ? `=${r.host}/${r.address}` : `${r.count}:${r.models.join("|")}`))
        .join(";");
}

/* The model a reconfigure flag names ("reconfigure:MODEL;restart:HOST" -> MODEL), or "". */
export function reconfigureModel(flags) {
    for (const f of (flags || "").split(";")) {
        if (f.startsWith("reconfigure:")) return f.slice("reconfigure:".length);
    }
    return "";
}
