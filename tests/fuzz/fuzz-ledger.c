/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The agent's state file. Each input is tried as it is (checksum and all) and, so that the fuzzer gets
 * past the CRC, as a body to which the right checksum line is appended. A file that parses serializes to
 * text that parses to the same state: nothing read is silently dropped or changed on the next save.
 */
#include <errno.h>

#include "fuzz.h"
#include "ledger.h"

static void check(const char *text, size_t len) {
        struct ledger l = {}, again = {};
        char *out = NULL, *out2 = NULL;
        size_t out_len, out2_len;
        unsigned line;
        int r;

        r = ledger_parse(text, len, &l, &line);
        fuzz_assert(r == 0 || r == -EBADMSG || r == -EINVAL);
        if (r < 0)
                return;
        fuzz_assert(ledger_serialize(&l, &out, &out_len) == 0);
        r = ledger_parse(out, out_len, &again, &line);
        if (r != 0)
                fprintf(stderr, "reparse failed at line %u: %.*s\n", line, (int) out_len, out);
        fuzz_assert(r == 0);
        fuzz_assert(ledger_serialize(&again, &out2, &out2_len) == 0);
        fuzz_assert(out_len == out2_len && memcmp(out, out2, out_len) == 0);
        fuzz_assert(l.n_claims == again.n_claims && l.n_identities == again.n_identities &&
                    l.n_previous_models == again.n_previous_models && l.n_unavailable == again.n_unavailable);
        for (size_t i = 0; i < l.n_claims; i++)
                fuzz_assert(ledger_find_claim(&l, l.claims[i].address));
        free(out);
        free(out2);
        ledger_done(&l);
        ledger_done(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = malloc(size + 32);
        int n;

        if (!text)
                abort();
        memcpy(text, data, size);
        check(text, size);
        n = snprintf(text + size, 32, "checksum %08lx\n", ledger_checksum((const char *) data, size));
        check(text, size + (size_t) n);
        free(text);
        return 0;
}
