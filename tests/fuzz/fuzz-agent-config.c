/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpupassd.conf. Group resolution is left out: it asks NSS, which is not the parser. */
#include <errno.h>

#include "agent-config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_strndup(data, size);
        struct agent_config c = {};
        int line = -1, r;

        r = agent_config_parse_string(&c, s, &line);
        fuzz_assert(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r == -EINVAL)
                fuzz_assert(line > 0);
        if (r == 0 && c.admin_group)
                fuzz_assert(strlen(c.admin_group) > 0);
        agent_config_done(&c);
        free(s);
        return 0;
}
