/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* clusterd.conf's VM runtime keys: Runtime=, LibvirtUri= and their defaults, ShutdownTimeoutSec=, OnCrash=. */
#include <errno.h>

#include "clusterd-config.h"
#include "tests.h"

static int parse(const char *text, struct clusterd_config *c, int *line) {
        *c = (struct clusterd_config) {};
        *line = 0;
        return clusterd_config_parse_string(c, text, line);
}

static void check_uri(const char *text, const char *expected) {
        struct clusterd_config c;
        int line;

        ASSERT_EQ(parse(text, &c, &line), 0);
        ASSERT_EQ(c.n_hosts, 1);
        if (expected)
                ASSERT_STREQ(c.hosts[0].runtime_uri, expected);
        else
                ASSERT_TRUE(!c.hosts[0].runtime_uri);
        clusterd_config_done(&c);
}

static void check_refused(const char *text, int expected_line) {
        struct clusterd_config c;
        int line;

        ASSERT_EQ(parse(text, &c, &line), -EINVAL);
        ASSERT_EQ(line, expected_line);
        clusterd_config_done(&c);
}

int main(void) {
        struct clusterd_config c;
        int line;

        /* Absent: today's behaviour, no runtime. */
        check_uri("[Host a]\nAddress=ssh:a\n", NULL);
        check_uri("[Host a]\nAddress=ssh:a\nRuntime=none\n", NULL);
        /* The host's own libvirt: over ssh for ssh: hosts (the same user), locally otherwise. */
        check_uri("[Host a]\nAddress=ssh:root@gpu-1\nRuntime=libvirt\n", "qemu+ssh://root@gpu-1/system");
        check_uri("[Host a]\nRuntime=libvirt\nAddress=ssh:gpu-1\n", "qemu+ssh://gpu-1/system");
        check_uri("[Host a]\nAddress=unix:path=/run/a/bus\nRuntime=libvirt\n", "qemu:///system");
        check_uri("[Host a]\nAddress=unix:path=/run/a/bus\nRuntime=libvirt\nLibvirtUri=test:///tmp/a.xml\n",
                  "test:///tmp/a.xml");

        /* Mistakes name their line. */
        check_refused("[Host a]\nAddress=ssh:a\nRuntime=kvm\n", 3);
        check_refused("[Host a]\nAddress=ssh:a\nRuntime=libvirt\nLibvirtUri=qemu:///system\nLibvirtUri=x\n", 5);
        check_refused("[Cluster]\nShutdownTimeoutSec=0\n", 2);
        check_refused("[Cluster]\nShutdownTimeoutSec=2m\n", 2);
        check_refused("[Cluster]\nShutdownTimeoutSec=-5\n", 2);
        check_refused("[Cluster]\nShutdownTimeoutSec=86401\n", 2);
        check_refused("[Cluster]\nOnCrash=reboot\n", 2);
        /* LibvirtUri= on a host without Runtime=libvirt is a mistake too (the file as a whole). */
        ASSERT_EQ(parse("[Host a]\nAddress=ssh:a\nLibvirtUri=qemu:///system\n", &c, &line), -EINVAL);
        clusterd_config_done(&c);

        /* Defaults, and values. */
        ASSERT_EQ(parse("[Host a]\nAddress=ssh:a\n", &c, &line), 0);
        ASSERT_EQ(c.shutdown_timeout_usec, 120 * 1000000ULL);
        ASSERT_TRUE(!c.restart_on_crash);
        clusterd_config_done(&c);
        ASSERT_EQ(parse("[Cluster]\nShutdownTimeoutSec=30\nOnCrash=restart\n", &c, &line), 0);
        ASSERT_EQ(c.shutdown_timeout_usec, 30 * 1000000ULL);
        ASSERT_TRUE(c.restart_on_crash);
        clusterd_config_done(&c);
        return 0;
}
