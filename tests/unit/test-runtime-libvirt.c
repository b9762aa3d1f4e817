/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A runtime link against libvirt's test driver (test:///FILE, in this process): the domains running at
 * connect are listed, a start and a stop are seen through the worker thread and libvirt's events on
 * sd-event, a stop from elsewhere is reported as unexpected, and a start libvirt refuses names its error.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "link/libvirt-event.h"
#include "link/runtime-libvirt.h"
#include "tests.h"

#define UUID_A "6b1f4c52-0000-4000-8000-00000000000a"
#define UUID_B "6b1f4c52-0000-4000-8000-00000000000b"

/* The link's own connection, so that the test can stop a domain "from inside" the host: the test
 * driver's state belongs to the connection that opened the file. */
static virConnectPtr opened;

virConnectPtr virConnectOpen(const char *name) {
        virConnectPtr (*real)(const char *) = (virConnectPtr (*)(const char *)) dlsym(RTLD_NEXT, "virConnectOpen");

        opened = real(name);
        if (opened)
                virConnectRef(opened);
        return opened;
}

struct seen {
        unsigned state_changes;
        char uuid[64], why[64];
        const char *state;
        bool expected;
        unsigned domain_changes;
        bool done;
        int error;
        char message[512];
};

static void on_state(struct runtime_link *r, void *userdata) {
        ((struct seen *) userdata)->state_changes++;
}

static void on_domain(struct runtime_link *r, const char *uuid, const char *state, const char *why, bool expected,
                      void *userdata) {
        struct seen *s = userdata;

        snprintf(s->uuid, sizeof(s->uuid), "%s", uuid);
        snprintf(s->why, sizeof(s->why), "%s", why);
        s->state = state ? "running-or-other" : NULL;
        s->expected = expected;
        s->domain_changes++;
}

static const struct runtime_callbacks callbacks = { .state_changed = on_state, .domain_changed = on_domain };

static void on_done(struct runtime_link *r, int error, const char *message, void *userdata) {
        struct seen *s = userdata;

        s->done = true;
        s->error = error;
        snprintf(s->message, sizeof(s->message), "%s", message ?: "");
}

static void run_until(sd_event *e, bool *flag) {
        for (int i = 0; i < 2000 && !*flag; i++)
                ASSERT_TRUE(sd_event_run(e, 10 * 1000) >= 0);
        ASSERT_TRUE(*flag);
}

static bool up(struct runtime_link *r) {
        return runtime_link_state(r) == RUNTIME_UP;
}

static void wait_up(sd_event *e, struct runtime_link *r) {
        for (int i = 0; i < 2000 && !up(r); i++)
                ASSERT_TRUE(sd_event_run(e, 10 * 1000) >= 0);
        ASSERT_TRUE(up(r));
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        ASSERT_TRUE(f);
        fputs(text, f);
        ASSERT_EQ(fclose(f), 0);
}

static const char *domain_xml(const char *name, const char *uuid, const char *devices) {
        static char xml[2048];

        snprintf(xml, sizeof(xml),
                 "<domain type='test'><name>%s</name><uuid>%s</uuid><memory unit='MiB'>64</memory>"
                 "<vcpu>1</vcpu><os><type>hvm</type></os><devices>%s</devices></domain>", name, uuid, devices);
        return xml;
}

int main(void) {
        char dir[] = "/tmp/test-runtime-XXXXXX", path[64], uri[96], node[2560];
        struct runtime_link *r = NULL;
        struct seen seen = {};
        sd_event *e = NULL;

        ASSERT_TRUE(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/host.xml", dir);
        snprintf(uri, sizeof(uri), "test://%s", path);
        /* One domain runs before the link connects: an aggregator restarting finds it by UUID. */
        snprintf(node, sizeof(node), "<node>%s</node>", domain_xml("adopted", UUID_A, ""));
        write_file(path, node);

        ASSERT_TRUE(sd_event_new(&e) >= 0);
        ASSERT_EQ(libvirt_event_setup(e), 0);
        ASSERT_EQ(runtime_link_new(e, "h1", uri, &callbacks, &seen, &r), 0);
        ASSERT_EQ(runtime_link_start(r, UUID_B, "<domain/>", on_done, &seen), -ENOTCONN);
        ASSERT_EQ(runtime_link_connect(r), 0);
        wait_up(e, r);
        ASSERT_STREQ(runtime_link_domain_state(r, UUID_A), "running");
        ASSERT_TRUE(!runtime_link_domain_state(r, UUID_B));

        /* Start: done, the domain is running, the change is reported as the link's own. */
        ASSERT_EQ(runtime_link_start(r, UUID_B, domain_xml("b", UUID_B, ""), on_done, &seen), 0);
        run_until(e, &seen.done);
        ASSERT_EQ(seen.error, 0);
        ASSERT_STREQ(runtime_link_domain_state(r, UUID_B), "running");
        ASSERT_STREQ(seen.uuid, UUID_B);
        ASSERT_TRUE(seen.expected);

        /* Stop (ACPI shutdown: the test driver's guests obey at once). */
        seen.done = false;
        ASSERT_EQ(runtime_link_stop(r, UUID_B, 60 * 1000 * 1000ULL, on_done, &seen), 0);
        ASSERT_EQ(runtime_link_stop(r, UUID_B, 60 * 1000 * 1000ULL, on_done, &seen), -EALREADY);
        run_until(e, &seen.done);
        ASSERT_EQ(seen.error, 0);
        ASSERT_TRUE(!runtime_link_domain_state(r, UUID_B));

        /* Stopped from inside the host: reported, not expected, with libvirt's reason. */
        virDomainPtr d = virDomainLookupByUUIDString(opened, UUID_A);
        ASSERT_TRUE(d);
        seen.domain_changes = 0;
        ASSERT_EQ(virDomainDestroy(d), 0);
        virDomainFree(d);
        bool changed = false;
        for (int i = 0; i < 2000 && !changed; i++) {
                ASSERT_TRUE(sd_event_run(e, 10 * 1000) >= 0);
                changed = seen.domain_changes > 0;
        }
        ASSERT_TRUE(changed);
        ASSERT_STREQ(seen.uuid, UUID_A);
        ASSERT_TRUE(!seen.state);
        ASSERT_STREQ(seen.why, "destroyed");
        ASSERT_TRUE(!seen.expected);
        ASSERT_TRUE(!runtime_link_domain_state(r, UUID_A));

        /* A domain libvirt refuses: its error, nothing running. */
        seen.done = false;
        ASSERT_EQ(runtime_link_start(r, UUID_B, domain_xml("b", UUID_B,
                  "<disk type='file'><source file='/x'/><target dev='vda'/></disk>"
                  "<disk type='file'><source file='/y'/><target dev='vda'/></disk>"), on_done, &seen), 0);
        run_until(e, &seen.done);
        ASSERT_TRUE(seen.error < 0);
        ASSERT_TRUE(strstr(seen.message, "vda"));
        ASSERT_TRUE(!runtime_link_domain_state(r, UUID_B));

        /* A stop of a domain that is not running is done at once. */
        seen.done = false;
        ASSERT_EQ(runtime_link_stop(r, UUID_B, 60 * 1000 * 1000ULL, on_done, &seen), 0);
        run_until(e, &seen.done);
        ASSERT_EQ(seen.error, 0);

        /* Freed with a start queued: answered, not lost. */
        seen.done = false;
        ASSERT_EQ(runtime_link_start(r, UUID_B, domain_xml("b", UUID_B, ""), on_done, &seen), 0);
        runtime_link_free(r);
        ASSERT_TRUE(seen.done);
        virConnectClose(opened);
        libvirt_event_detach();
        sd_event_unref(e);
        unlink(path);
        rmdir(dir);
        return 0;
}
