/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The worker thread of a runtime link: every blocking libvirt call of one host, in queue order. A thread
 * per host rather than a pool: libvirt serializes the calls of one connection anyway, a host's calls
 * must keep their order (start before stop), and a host that hangs (ssh stalled, libvirtd stuck) then
 * holds one thread and delays only its own queue.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "log.h"
#include "macro.h"
#include "runtime-worker.h"

/* Seconds between keepalive probes, and probes unanswered before the connection is closed. */
#define KEEPALIVE_INTERVAL 5
#define KEEPALIVE_COUNT 3

struct runtime_request *runtime_request_free(struct runtime_request *q) {
        if (!q)
                return NULL;
        free(q->xml);
        free(q->message);
        for (size_t i = 0; i < q->n_domains; i++)
                free(q->domains[i].state);
        free(q->domains);
        return mfree(q);
}

const char *runtime_state_to_string(int state) {
        switch (state) {
        case VIR_DOMAIN_RUNNING:
        case VIR_DOMAIN_BLOCKED:
        case VIR_DOMAIN_SHUTDOWN: /* being shut down: still running */
                return "running";
        case VIR_DOMAIN_PAUSED:
                return "paused";
        case VIR_DOMAIN_CRASHED:
                return "crashed";
        case VIR_DOMAIN_PMSUSPENDED:
                return "pmsuspended";
        default:
                return "shut off";
        }
}

/* libvirt's error for this thread's last call, as the request's result. */
static void fail(struct runtime_worker *w, struct runtime_request *q, int r) {
        virErrorPtr e = virGetLastError();

        q->r = r;
        q->no_domain = e && e->code == VIR_ERR_NO_DOMAIN;
        q->message = strdup(virGetLastErrorMessage());
        q->connection_lost = w->conn && virConnectIsAlive(w->conn) == 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        struct runtime_worker *w = opaque;
        uint64_t one = 1;

        /* Any thread: the worker's (a call found the connection dead) or the main one (its socket). */
        pthread_mutex_lock(&w->lock);
        w->closed = true;
        w->close_reason = reason;
        pthread_mutex_unlock(&w->lock);
        (void) !write(w->wake_fd, &one, sizeof(one));
}

static void disconnect(struct runtime_worker *w) {
        if (!w->conn)
                return;
        if (w->event_id >= 0)
                (void) virConnectDomainEventDeregisterAny(w->conn, w->event_id);
        (void) virConnectUnregisterCloseCallback(w->conn, on_close);
        (void) virConnectClose(w->conn);
        w->conn = NULL;
        w->event_id = -1;
}

static int list_running(struct runtime_worker *w, struct runtime_request *q) {
        virDomainPtr *doms = NULL;
        int n, r = 0;

        n = virConnectListAllDomains(w->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        if (n < 0)
                return -EIO;
        q->domains = calloc(n ?: 1, sizeof(*q->domains));
        for (int i = 0; i < n; i++) {
                int state = VIR_DOMAIN_RUNNING, reason;

                if (q->domains && virDomainGetUUIDString(doms[i], q->domains[q->n_domains].uuid) == 0) {
                        if (virDomainGetState(doms[i], &state, &reason, 0) < 0)
                                state = VIR_DOMAIN_RUNNING; /* stopped meanwhile: its event follows */
                        q->domains[q->n_domains].state = strdup(runtime_state_to_string(state));
                        if (!q->domains[q->n_domains++].state)
                                r = -ENOMEM;
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        return !q->domains ? -ENOMEM : r;
}

static void do_connect(struct runtime_worker *w, struct runtime_request *q) {
        disconnect(w);
        w->conn = virConnectOpen(w->uri);
        if (!w->conn)
                return fail(w, q, -EHOSTUNREACH);
        if (virConnectRegisterCloseCallback(w->conn, on_close, w, NULL) < 0 &&
            virGetLastErrorCode() != VIR_ERR_NO_SUPPORT)
                goto failed;
        /* Drivers without a remote side (test:///) have no keepalive: nothing to lose there. */
        if (virConnectSetKeepAlive(w->conn, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT) < 0 &&
            virGetLastErrorCode() != VIR_ERR_NO_SUPPORT)
                goto failed;
        /* Events first, then the list: a change after the list is in the events that follow it. */
        w->event_id = virConnectDomainEventRegisterAny(w->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                       w->on_lifecycle, w, NULL);
        if (w->event_id < 0)
                goto failed;
        if (list_running(w, q) < 0)
                goto failed;
        return;
failed:
        fail(w, q, -EHOSTUNREACH);
        q->connection_lost = true;
        disconnect(w);
}

static virDomainPtr lookup(struct runtime_worker *w, struct runtime_request *q) {
        virDomainPtr d;

        if (!w->conn) {
                q->r = -ENOTCONN;
                q->message = strdup("not connected to libvirt");
                q->connection_lost = true;
                return NULL;
        }
        d = virDomainLookupByUUIDString(w->conn, q->uuid);
        if (!d)
                fail(w, q, -ENOENT);
        return d;
}

static void do_start(struct runtime_worker *w, struct runtime_request *q) {
        virDomainPtr d;

        if (!w->conn) {
                q->r = -ENOTCONN;
                q->message = strdup("not connected to libvirt");
                return;
        }
        /* Transient and without VIR_DOMAIN_START_AUTODESTROY: it outlives this connection. */
        d = virDomainCreateXML(w->conn, q->xml, 0);
        if (!d)
                return fail(w, q, -EIO);
        virDomainFree(d);
}

static void do_stop(struct runtime_worker *w, struct runtime_request *q) {
        virDomainPtr d = lookup(w, q);

        if (!d)
                return;
        if ((q->op == RUNTIME_OP_SHUTDOWN ? virDomainShutdown(d) : virDomainDestroy(d)) < 0) {
                fail(w, q, -EIO);
                /* Stopped meanwhile: what was asked for has happened. */
                if (virDomainIsActive(d) == 0) {
                        q->r = 0;
                        q->no_domain = true;
                }
        }
        virDomainFree(d);
}

static void run_request(struct runtime_worker *w, struct runtime_request *q) {
        switch (q->op) {
        case RUNTIME_OP_CONNECT:
                return do_connect(w, q);
        case RUNTIME_OP_START:
                return do_start(w, q);
        case RUNTIME_OP_SHUTDOWN:
        case RUNTIME_OP_DESTROY:
                return do_stop(w, q);
        case RUNTIME_OP_DISCONNECT:
                return disconnect(w);
        }
}

static void *worker_main(void *userdata) {
        struct runtime_worker *w = userdata;
        uint64_t one = 1;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                struct runtime_request *q, **tail;

                while (!w->queue && !w->quit)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (!w->queue)
                        break;
                q = w->current = w->queue;
                w->queue = q->next;
                q->next = NULL;
                pthread_mutex_unlock(&w->lock);
                run_request(w, q);
                pthread_mutex_lock(&w->lock);
                w->current = NULL;
                for (tail = &w->results; *tail; tail = &(*tail)->next)
                        ;
                *tail = q;
                (void) !write(w->wake_fd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&w->lock);
        disconnect(w);
        runtime_worker_unref(w);
        return NULL;
}

static void ignore_error(void *userdata, virErrorPtr e) {
        /* Each error is handed back with its request and logged (or answered) where it is decided on. */
}

static void libvirt_init(void) {
        (void) virInitialize();
        virSetErrorFunc(NULL, ignore_error);
}

int runtime_worker_new(const char *uri, struct runtime_worker **ret) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        struct runtime_worker *w;

        pthread_once(&once, libvirt_init);
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        w->refs = 1;
        w->event_id = -1;
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        w->uri = strdup(uri);
        if (w->wake_fd < 0 || !w->uri) {
                int r = w->wake_fd < 0 ? negative_errno() : -ENOMEM;

                runtime_worker_unref(w);
                return r;
        }
        *ret = w;
        return 0;
}

int runtime_worker_start(struct runtime_worker *w, pthread_t *ret) {
        int r;

        w->refs++;
        r = pthread_create(ret, NULL, worker_main, w);
        if (r != 0) {
                w->refs--;
                return -r;
        }
        return 0;
}

static void free_list(struct runtime_request *q) {
        while (q) {
                struct runtime_request *next = q->next;

                runtime_request_free(q);
                q = next;
        }
}

void runtime_worker_unref(struct runtime_worker *w) {
        bool last;

        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        last = --w->refs == 0;
        pthread_mutex_unlock(&w->lock);
        if (!last)
                return;
        free_list(w->queue);
        free_list(w->results);
        if (w->wake_fd >= 0)
                close(w->wake_fd);
        free(w->uri);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
}

void runtime_worker_queue(struct runtime_worker *w, struct runtime_request *q) {
        struct runtime_request **tail;

        pthread_mutex_lock(&w->lock);
        for (tail = &w->queue; *tail; tail = &(*tail)->next)
                ;
        *tail = q;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

struct runtime_request *runtime_worker_take_results(struct runtime_worker *w, bool *ret_closed,
                                                    int *ret_close_reason) {
        struct runtime_request *q;

        pthread_mutex_lock(&w->lock);
        q = TAKE_PTR(w->results);
        *ret_closed = w->closed;
        *ret_close_reason = w->close_reason;
        w->closed = false;
        pthread_mutex_unlock(&w->lock);
        return q;
}
