/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the aggregator's VM methods accept as text: the GPU request of SetVmGpus (validated before it is
 * stored, parsed again at every PowerOn), VM UUIDs (the agents' Claim, Release, OpenVfio, AllowUser) and
 * the flags kept per VM. The input's first line is a flag key, the rest the text under test.
 */
#include <errno.h>

#include "fuzz.h"
#include "ledger.h"
#include "vmstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_strndup(data, size), *nl, *key, *text, *why = NULL, *flags, *v;
        int r;

        nl = strchr(s, '\n');
        key = nl ? s : (char *) "reconfigure";
        text = nl ? nl + 1 : s;
        if (nl)
                *nl = '\0';

        r = gpu_requests_validate(text, &why);
        fuzz_assert(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r == -EINVAL)
                fuzz_assert(why && why[0]);
        else
                fuzz_assert(!why);
        free(why);

        if (vm_uuid_is_valid(text))
                fuzz_assert(strlen(text) == 36);

        /* Flags: what is set is read back; removing leaves no trace of the key. A key with ';' or ':' is not
         * one the aggregator uses (they are fixed words), so only plain keys are checked. */
        if (!strpbrk(key, ";:") && key[0]) {
                flags = strdup(text);
                fuzz_assert(flags);
                fuzz_assert(vm_flag_set(&flags, key, "value-1") == 0);
                v = vm_flag_get(flags, key);
                fuzz_assert(v && strcmp(v, "value-1") == 0);
                free(v);
                fuzz_assert(vm_flag_set(&flags, key, NULL) == 0);
                v = vm_flag_get(flags, key);
                fuzz_assert(!v);
                free(flags);
        }
        v = vm_flag_get(text, key);
        free(v);
        free(s);
        return 0;
}
