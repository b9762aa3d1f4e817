/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "agent-config.h"
#include "fileio.h"
#include "macro.h"
#include "tests.h"

static void test_defaults(void) {
        struct agent_config c = {};

        ASSERT_EQ(agent_config_parse_string(&c, "", NULL), 0);
        ASSERT_STREQ(c.admin_group, "gpupass");
        agent_config_done(&c);
        ASSERT_EQ(agent_config_load(&c, "/nonexistent/gpupassd.conf", NULL), 0);
        ASSERT_STREQ(c.admin_group, "gpupass");
        agent_config_done(&c);
}

static void test_admin_group(void) {
        struct agent_config c = {};

        ASSERT_EQ(agent_config_parse_string(&c, "# comment\n[Agent]\nAdminGroup = 100\n", NULL), 0);
        ASSERT_STREQ(c.admin_group, "100");
        ASSERT_EQ(agent_config_resolve(&c), 0);
        ASSERT_TRUE(c.admin_gid_valid);
        ASSERT_EQ(c.admin_gid, 100);
        agent_config_done(&c);

        ASSERT_EQ(agent_config_parse_string(&c, "[Agent]\nAdminGroup=root\n", NULL), 0);
        ASSERT_EQ(agent_config_resolve(&c), 0);
        ASSERT_EQ(c.admin_gid, 0);
        agent_config_done(&c);

        ASSERT_EQ(agent_config_parse_string(&c, "[Agent]\nAdminGroup=no-such-group-xyz\n", NULL), 0);
        ASSERT_EQ(agent_config_resolve(&c), -ENOENT);
        ASSERT_TRUE(!c.admin_gid_valid);
        agent_config_done(&c);
}

/* The names above went through getent in a child: no NSS module (libnss_systemd for a group that is not in
 * /etc/group, with Debian's nsswitch.conf) is mapped into this process, as it would not be in gpupassd. */
static void test_lookup_loads_no_nss_module(void) {
        _cleanup_free_ char *maps = NULL;

        ASSERT_EQ(read_full_file("/proc/self/maps", &maps, NULL), 0);
        ASSERT_TRUE(strstr(maps, "libnss_") == NULL);
}

static void test_errors_name_the_line(void) {
        struct agent_config c = {};
        int line = 0;

        /* A typo is an error, not a silently ignored setting. */
        ASSERT_EQ(agent_config_parse_string(&c, "[Agent]\nAdminGroup=x\nAdminGrup=y\n", &line), -EINVAL);
        ASSERT_EQ(line, 3);
        agent_config_done(&c);
        ASSERT_EQ(agent_config_parse_string(&c, "[Other]\nKey=1\n", &line), -EINVAL);
        ASSERT_EQ(line, 2);
        agent_config_done(&c);
        ASSERT_EQ(agent_config_parse_string(&c, "[Agent]\nAdminGroup=\n", &line), -EINVAL);
        agent_config_done(&c);
}

int main(void) {
        test_defaults();
        test_admin_group();
        test_errors_name_the_line();
        test_lookup_loads_no_nss_module();
        return 0;
}
