/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the aggregator's VM methods accept as text: the GPU request of SetVmGpus (validated before it is
 * stored, parsed again at every PowerOn), CreateVm's name, SetVmAffinity's host list, VM UUIDs (the agents'
 * Claim, Release, OpenVfio, AllowUser) and the flags kept per VM. The input's first line is a flag key, the
 * rest the text under test.
 */
#include <errno.h>

#include "fuzz.h"
#include "ledger.h"
#include "macro.h"
#include "strv.h"
#include "registry/vm-spec.h"
#include "registry/vmstore.h"

static bool is_host(const char *name, void *userdata) {
        return strlen(name) == 2 && name[0] == 'h' && name[1] >= '0' && name[1] <= '9';
}

static void affinity_check(const char *text) {
        char **words = NULL, *joined = NULL, *why = NULL, *copy = strdup(text), *save = NULL;
        bool all_hosts = true;
        size_t n = 0;
        int r;

        fuzz_assert(copy);
        for (char *w = strtok_r(copy, " \t\n", &save); w && n < 64; w = strtok_r(NULL, " \t\n", &save)) {
                fuzz_assert(strv_extend(&words, w) == 0);
                all_hosts = all_hosts && is_host(w, NULL);
                n++;
        }
        r = vm_affinity_join(words, is_host, NULL, &joined, &why);
        fuzz_assert(r == (all_hosts ? 0 : -ENOENT));
        if (r == 0) {
                _cleanup_strv_free_ char **back = NULL;
                char *j = strdup(joined), *save2 = NULL;

                fuzz_assert(!why && j);
                for (char *h = strtok_r(j, ",", &save2); h; h = strtok_r(NULL, ",", &save2))
                        fuzz_assert(strv_extend(&back, h) == 0);
                free(j);
                fuzz_assert(back || n == 0);
                for (char **w = words; w && *w; w++)
                        fuzz_assert(strv_contains(back, *w));
                for (char **a = back; a && *a; a++)
                        for (char **b = a + 1; *b; b++)
                                fuzz_assert(strcmp(*a, *b) != 0);
        } else
                fuzz_assert(why && strstr(why, "is not in the cluster") && !joined);
        strv_free(words);
        free(joined);
        free(why);
        free(copy);
}

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
        why = NULL;

        if (vm_uuid_is_valid(text))
                fuzz_assert(strlen(text) == 36);

        /* A name accepted is one the registry and gpupassctl can take back: bounded, plain characters, never
         * taken for a UUID. */
        r = vm_name_check(text, &why);
        fuzz_assert(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r == 0) {
                fuzz_assert(!why && strlen(text) >= 1 && strlen(text) <= VM_MAX_NAME && !uuid_shaped(text));
                fuzz_assert(strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
                            strlen(text));
        } else
                fuzz_assert(r == -ENOMEM || (why && why[0]));
        free(why);
        why = NULL;

        /* The text's words as an affinity list over a cluster of hosts h0..h9: accepted only when every word
         * is a host, each kept once, in the order given. */
        affinity_check(text);

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
