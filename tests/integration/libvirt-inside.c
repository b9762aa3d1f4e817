/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test-only, preloaded into gpupass-clusterd by the runtime tests (never installed). libvirt's test
 * driver keeps the domains of test:///FILE in the process and connection that opened it, so no virsh can
 * reach the aggregator's simulated domains. This library records every connection the process opens
 * (virConnectOpen) and serves the unix socket $GPUPASS_LIBVIRT_INSIDE_SOCKET: one request per connection,
 * "destroy URI UUID" or "shutdown URI UUID", done with virDomainDestroy/virDomainShutdown on the
 * aggregator's own connection to URI, as a guest powering itself off or an operator's `virsh destroy` on
 * a real host would (the answer is "ok" or "error: MESSAGE"); "state URI UUID" answers what libvirt says
 * of the domain ("running", "shut off", "other", or "none": no such domain), as `virsh domstate` would;
 * "deaf URI UUID" makes that guest ignore ACPI shutdown requests from then on (virDomainShutdown succeeds
 * and nothing happens, as with a guest without ACPI support or one that hangs), so that the destroy after
 * ShutdownTimeoutSec is seen; "crash URI UUID" destroys the domain and the lifecycle event that follows
 * reaches the aggregator as libvirt reports a guest panic with on_crash=destroy, STOPPED with detail
 * CRASHED (the test driver cannot crash a guest; the preload wraps the aggregator's event callback for
 * that one event).
 * The aggregator learns of a stop only as it would on a real host: from libvirt's lifecycle event.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct { char *uri; virConnectPtr conn; } opened[64];
static size_t n_opened;
static char deaf[16][VIR_UUID_STRING_BUFLEN];
static size_t n_deaf;
static char crashing[16][VIR_UUID_STRING_BUFLEN];
static size_t n_crashing;
/* The aggregator's lifecycle callbacks, wrapped (kept for the process's life: no free callback). */
static struct wrapped { virConnectDomainEventCallback cb; void *opaque; } wrapped[16];
static size_t n_wrapped;

static bool take_crashing(const char *uuid) {
        bool found = false;

        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_crashing && !found; i++)
                if (strcasecmp(crashing[i], uuid) == 0) {
                        memmove(crashing[i], crashing[--n_crashing], sizeof(crashing[i]));
                        found = true;
                }
        pthread_mutex_unlock(&lock);
        return found;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr d, int event, int detail, void *opaque) {
        struct wrapped *w = opaque;
        char uuid[VIR_UUID_STRING_BUFLEN];

        if (event == VIR_DOMAIN_EVENT_STOPPED && virDomainGetUUIDString(d, uuid) == 0 && take_crashing(uuid))
                detail = VIR_DOMAIN_EVENT_STOPPED_CRASHED;
        return w->cb(conn, d, event, detail, w->opaque);
}

static void answer(int fd, const char *text) {
        (void) !write(fd, text, strlen(text));
}

static void handle(int fd) {
        char line[512] = {}, verb[16], uri[400], uuid[64];
        virConnectPtr conn = NULL;
        virDomainPtr d;
        ssize_t n;
        int r;

        n = read(fd, line, sizeof(line) - 1);
        if (n <= 0 || sscanf(line, "%15s %399s %63s", verb, uri, uuid) != 3)
                return answer(fd, "error: expected VERB URI UUID\n");
        pthread_mutex_lock(&lock);
        for (size_t i = n_opened; i > 0 && !conn; i--) /* the newest: a reconnection replaces the old one */
                if (strcmp(opened[i - 1].uri, uri) == 0)
                        conn = opened[i - 1].conn;
        pthread_mutex_unlock(&lock);
        if (!conn)
                return answer(fd, "error: the aggregator has no connection to that URI\n");
        d = virDomainLookupByUUIDString(conn, uuid);
        if (strcmp(verb, "state") == 0) {
                int state = VIR_DOMAIN_SHUTOFF, reason;

                if (d && virDomainGetState(d, &state, &reason, 0) < 0)
                        state = VIR_DOMAIN_NOSTATE;
                if (d)
                        virDomainFree(d);
                return answer(fd, !d ? "none\n" : state == VIR_DOMAIN_RUNNING ? "running\n" :
                                  state == VIR_DOMAIN_SHUTOFF ? "shut off\n" : "other\n");
        }
        if (strcmp(verb, "crash") == 0 && d) {
                pthread_mutex_lock(&lock);
                if (n_crashing < sizeof(crashing) / sizeof(crashing[0]))
                        snprintf(crashing[n_crashing++], sizeof(crashing[0]), "%.36s", uuid);
                pthread_mutex_unlock(&lock);
                strcpy(verb, "destroy");
        }
        if (strcmp(verb, "deaf") == 0) {
                if (d)
                        virDomainFree(d);
                pthread_mutex_lock(&lock);
                if (n_deaf < sizeof(deaf) / sizeof(deaf[0]))
                        snprintf(deaf[n_deaf++], sizeof(deaf[0]), "%.36s", uuid);
                pthread_mutex_unlock(&lock);
                return answer(fd, "ok\n");
        }
        if (!d)
                r = -1;
        else {
                r = strcmp(verb, "shutdown") == 0 ? virDomainShutdown(d) : virDomainDestroy(d);
                virDomainFree(d);
        }
        if (r < 0) {
                answer(fd, "error: ");
                answer(fd, virGetLastErrorMessage());
                return answer(fd, "\n");
        }
        answer(fd, "ok\n");
}

static void *serve(void *userdata) {
        int listener = (int) (long) userdata;

        for (;;) {
                int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0)
                        continue;
                handle(fd);
                close(fd);
        }
        return NULL;
}

static void start_server(void) {
        const char *path = getenv("GPUPASS_LIBVIRT_INSIDE_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        pthread_t thread;
        int fd;

        if (!path || strlen(path) >= sizeof(sa.sun_path))
                return;
        strcpy(sa.sun_path, path);
        (void) unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
            pthread_create(&thread, NULL, serve, (void *) (long) fd) != 0) {
                fprintf(stderr, "libvirt-inside: cannot serve %s\n", path);
                return;
        }
        pthread_detach(thread);
}

__attribute__((visibility("default"))) virConnectPtr virConnectOpen(const char *name) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        virConnectPtr (*real)(const char *) = (virConnectPtr (*)(const char *)) dlsym(RTLD_NEXT, "virConnectOpen");
        virConnectPtr conn = real(name);

        pthread_once(&once, start_server);
        pthread_mutex_lock(&lock);
        if (conn && name && n_opened < sizeof(opened) / sizeof(opened[0])) {
                opened[n_opened].uri = strdup(name);
                opened[n_opened++].conn = conn;
                virConnectRef(conn); /* kept for the tests' requests, also after the aggregator closes it */
        }
        pthread_mutex_unlock(&lock);
        return conn;
}

__attribute__((visibility("default"))) int virDomainShutdown(virDomainPtr d) {
        int (*real)(virDomainPtr) = (int (*)(virDomainPtr)) dlsym(RTLD_NEXT, "virDomainShutdown");
        char uuid[VIR_UUID_STRING_BUFLEN];
        bool ignored = false;

        if (virDomainGetUUIDString(d, uuid) == 0) {
                pthread_mutex_lock(&lock);
                for (size_t i = 0; i < n_deaf; i++)
                        ignored = ignored || strcasecmp(deaf[i], uuid) == 0;
                pthread_mutex_unlock(&lock);
        }
        return ignored ? 0 : real(d); /* the request is delivered; the guest does nothing with it */
}

__attribute__((visibility("default"))) int virConnectDomainEventRegisterAny(virConnectPtr conn, virDomainPtr dom,
                                                                            int id, virConnectDomainEventGenericCallback cb,
                                                                            void *opaque, virFreeCallback freecb) {
        int (*real)(virConnectPtr, virDomainPtr, int, virConnectDomainEventGenericCallback, void *, virFreeCallback) =
                (int (*)(virConnectPtr, virDomainPtr, int, virConnectDomainEventGenericCallback, void *,
                         virFreeCallback)) dlsym(RTLD_NEXT, "virConnectDomainEventRegisterAny");
        struct wrapped *w = NULL;

        pthread_mutex_lock(&lock);
        if (id == VIR_DOMAIN_EVENT_ID_LIFECYCLE && !freecb && n_wrapped < sizeof(wrapped) / sizeof(wrapped[0])) {
                w = &wrapped[n_wrapped++];
                *w = (struct wrapped) { .cb = (virConnectDomainEventCallback) (void (*)(void)) cb, .opaque = opaque };
        }
        pthread_mutex_unlock(&lock);
        if (!w)
                return real(conn, dom, id, cb, opaque, freecb);
        return real(conn, dom, id, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), w, NULL);
}
