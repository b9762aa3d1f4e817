/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "agent-config.h"
#include "fileio.h"
#include "group-lookup.h"
#include "macro.h"

static int config_set_defaults(struct agent_config *c) {
        if (!c->admin_group) {
                c->admin_group = strdup(AGENT_DEFAULT_ADMIN_GROUP);
                if (!c->admin_group)
                        return -ENOMEM;
        }
        return 0;
}

/* inih handler: nonzero means the line was fine. Unknown keys are errors, so that a typo is not a
 * silently ignored setting. */
static int config_handler(void *user, const char *section, const char *name, const char *value) {
        struct agent_config *c = user;

        if (strcmp(section, "Agent") != 0)
                return 0;
        if (strcmp(name, "AdminGroup") == 0) {
                char *s;

                if (!*value || strchr(value, ' '))
                        return 0;
                s = strdup(value);
                if (!s)
                        return 0;
                free(c->admin_group);
                c->admin_group = s;
                return 1;
        }
        return 0;
}

static int config_result(int r, int *ret_line) {
        if (r == 0)
                return 0;
        if (ret_line)
                *ret_line = r;
        return r > 0 ? -EINVAL : -EIO;
}

int agent_config_parse_string(struct agent_config *c, const char *text, int *ret_line) {
        int r;

        r = config_result(ini_parse_string(text, config_handler, c), ret_line);
        if (r < 0)
                return r;
        return config_set_defaults(c);
}

int agent_config_load(struct agent_config *c, const char *path, int *ret_line) {
        FILE *f;
        int r;

        f = fopen(path, "re");
        if (!f) {
                if (errno != ENOENT)
                        return negative_errno();
                return config_set_defaults(c);
        }
        r = config_result(ini_parse_file(f, config_handler, c), ret_line);
        fclose(f);
        if (r < 0)
                return r;
        return config_set_defaults(c);
}

void agent_config_done(struct agent_config *c) {
        c->admin_group = mfree(c->admin_group);
        c->admin_gid_valid = false;
}

int agent_config_resolve(struct agent_config *c) {
        unsigned long long number;
        gid_t gid;
        int r;

        c->admin_gid_valid = false;
        if (parse_unsigned(c->admin_group, (gid_t) -2, &number) >= 0) {
                c->admin_gid = (gid_t) number;
                c->admin_gid_valid = true;
                return 0;
        }
        r = group_lookup_gid(c->admin_group, &gid);
        if (r < 0)
                return r;
        c->admin_gid = gid;
        c->admin_gid_valid = true;
        return 0;
}
