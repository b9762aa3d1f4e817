/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * clusterd.conf, and what the aggregator makes of each host's Address= (an sd-bus address: the escaping
 * of ssh:HOST and machine:NAME must not let a configured name add address keys).
 */
#include <errno.h>

#include "clusterd-config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_strndup(data, size);
        struct clusterd_config c = {};
        char *address = NULL;
        int line = -1, r;

        r = clusterd_config_parse_string(&c, s, &line);
        fuzz_assert(r <= 0);
        if (r == 0)
                for (size_t i = 0; i < c.n_hosts; i++) {
                        fuzz_assert(c.hosts[i].name && c.hosts[i].name[0]);
                        for (size_t j = 0; j < i; j++)
                                fuzz_assert(strcmp(c.hosts[i].name, c.hosts[j].name) != 0);
                }
        clusterd_config_done(&c);

        /* The input as one Address= value. */
        r = host_address_to_bus_address(s, &address);
        fuzz_assert(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r == 0 && (strncmp(s, "ssh:", 4) == 0 || strncmp(s, "machine:", 8) == 0)) {
                /* Escaped: no ',' or ';' of the name's own reaches the address. */
                const char *value = strchr(address, '=');

                fuzz_assert(value);
                if (strncmp(s, "machine:", 8) == 0)
                        fuzz_assert(!strchr(address, ',') && !strchr(address, ';'));
        }
        free(address);
        free(s);
        return 0;
}
