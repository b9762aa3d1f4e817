/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A runtime link, main-thread side: the connection's state and backoff, the running domains as observed
 * (the list at connect, then libvirt's lifecycle events), and the stop sequence (ACPI shutdown, destroy
 * at the timeout). The calls themselves run in the link's worker thread (runtime-worker.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "log.h"
#include "macro.h"
#include "runtime-libvirt.h"
#include "runtime-worker.h"
#include "strv.h"

#define BACKOFF_MIN_USEC (250 * 1000ULL)
#define BACKOFF_MAX_USEC (30 * 1000 * 1000ULL)

struct runtime_event {
        char uuid[VIR_UUID_STRING_BUFLEN];
        int event, detail;
        struct runtime_event *next;
};

struct runtime_stop {
        char uuid[VIR_UUID_STRING_BUFLEN];
        struct runtime_link *link;
        sd_event_source *timer;     /* the destroy deadline */
        runtime_done_t done;
        void *userdata;
        bool destroying;
};

struct runtime_link {
        sd_event *event;
        char *name, *uri;
        const struct runtime_callbacks *cb;
        void *userdata;
        struct runtime_worker *worker;
        sd_event_source *wake_source, *retry;
        enum runtime_link_state state;
        char *error;
        uint64_t backoff_usec;
        unsigned generation;        /* bumped at each connect: results of an older one are stale */
        struct runtime_domain *domains;
        size_t n_domains;
        struct runtime_event *buffered; /* events while connecting, replayed after the list */
        struct runtime_stop **stops;
        size_t n_stops;
        char **starting;            /* UUIDs with a start in flight */
};

const char *runtime_link_name(const struct runtime_link *r) {
        return r->name;
}

const char *runtime_link_uri(const struct runtime_link *r) {
        return r->uri;
}

enum runtime_link_state runtime_link_state(const struct runtime_link *r) {
        return r->state;
}

const char *runtime_link_error(const struct runtime_link *r) {
        return r->error;
}

static struct runtime_domain *find_domain(const struct runtime_link *r, const char *uuid) {
        for (size_t i = 0; i < r->n_domains; i++)
                if (strcasecmp(r->domains[i].uuid, uuid) == 0)
                        return &r->domains[i];
        return NULL;
}

const char *runtime_link_domain_state(const struct runtime_link *r, const char *uuid) {
        struct runtime_domain *d = r->state == RUNTIME_UP ? find_domain(r, uuid) : NULL;

        return d ? d->state : NULL;
}

static struct runtime_stop *find_stop(const struct runtime_link *r, const char *uuid) {
        for (size_t i = 0; i < r->n_stops; i++)
                if (strcasecmp(r->stops[i]->uuid, uuid) == 0)
                        return r->stops[i];
        return NULL;
}

static bool is_starting(const struct runtime_link *r, const char *uuid) {
        for (char **s = r->starting; s && *s; s++)
                if (strcasecmp(*s, uuid) == 0)
                        return true;
        return false;
}

static void clear_domains(struct runtime_link *r) {
        for (size_t i = 0; i < r->n_domains; i++)
                free(r->domains[i].state);
        r->domains = mfree(r->domains);
        r->n_domains = 0;
}

/* Records the domain's new state (NULL: gone) and reports a change. */
static void set_domain_state(struct runtime_link *r, const char *uuid, const char *state, const char *why) {
        struct runtime_domain *d = find_domain(r, uuid);
        bool expected = find_stop(r, uuid) || is_starting(r, uuid);

        if (!state) {
                if (!d)
                        return;
                free(d->state);
                *d = r->domains[--r->n_domains];
        } else if (d) {
                char *s;

                if (strcmp(d->state, state) == 0 || !(s = strdup(state)))
                        return;
                free(d->state);
                d->state = s;
        } else {
                struct runtime_domain *t = realloc(r->domains, sizeof(*t) * (r->n_domains + 1));

                if (!t)
                        return;
                r->domains = t;
                t = &r->domains[r->n_domains];
                snprintf(t->uuid, sizeof(t->uuid), "%s", uuid);
                if (!(t->state = strdup(state)))
                        return;
                r->n_domains++;
        }
        if (r->cb->domain_changed)
                r->cb->domain_changed(r, uuid, state, why, expected, r->userdata);
}

static void stop_finish(struct runtime_link *r, struct runtime_stop *s, int error, const char *message) {
        for (size_t i = 0; i < r->n_stops; i++)
                if (r->stops[i] == s) {
                        r->stops[i] = r->stops[--r->n_stops];
                        break;
                }
        sd_event_source_disable_unref(s->timer);
        if (s->done)
                s->done(r, error, message, s->userdata);
        free(s);
}

static const char *event_state(int event) {
        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
        case VIR_DOMAIN_EVENT_RESUMED:
                return "running";
        case VIR_DOMAIN_EVENT_SUSPENDED:
                return "paused";
        case VIR_DOMAIN_EVENT_CRASHED:
                return "crashed";
        case VIR_DOMAIN_EVENT_PMSUSPENDED:
                return "pmsuspended";
        default:
                return NULL;
        }
}

static const char *stopped_why(int detail) {
        static const char *const table[] = {
                [VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN] = "shutdown",
                [VIR_DOMAIN_EVENT_STOPPED_DESTROYED] = "destroyed",
                [VIR_DOMAIN_EVENT_STOPPED_CRASHED] = "crashed",
                [VIR_DOMAIN_EVENT_STOPPED_MIGRATED] = "migrated",
                [VIR_DOMAIN_EVENT_STOPPED_SAVED] = "saved",
                [VIR_DOMAIN_EVENT_STOPPED_FAILED] = "failed",
                [VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT] = "from snapshot",
        };

        return detail >= 0 && (size_t) detail < ELEMENTSOF(table) && table[detail] ? table[detail] : "stopped";
}

static void apply_event(struct runtime_link *r, const char *uuid, int event, int detail) {
        struct runtime_stop *s;

        switch (event) {
        case VIR_DOMAIN_EVENT_STOPPED:
                set_domain_state(r, uuid, NULL, stopped_why(detail));
                s = find_stop(r, uuid);
                if (s)
                        stop_finish(r, s, 0, NULL);
                return;
        case VIR_DOMAIN_EVENT_STARTED:
                return set_domain_state(r, uuid, "running", "booted");
        case VIR_DOMAIN_EVENT_CRASHED:
                return set_domain_state(r, uuid, "crashed", "crashed");
        default:
                if (event_state(event))
                        set_domain_state(r, uuid, event_state(event), event_state(event));
                return; /* defined, undefined, shutdown begun: no change of state */
        }
}

/* libvirt's lifecycle event, on the main thread (dispatched from libvirt's timeout on sd-event). */
static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        struct runtime_worker *w = opaque;
        struct runtime_link *r = w->link;
        char uuid[VIR_UUID_STRING_BUFLEN];
        struct runtime_event *e, **tail;

        if (!r || virDomainGetUUIDString(dom, uuid) < 0)
                return 0;
        if (r->state == RUNTIME_UP) {
                apply_event(r, uuid, event, detail);
                return 0;
        }
        e = calloc(1, sizeof(*e));
        if (!e)
                return 0;
        memcpy(e->uuid, uuid, sizeof(uuid));
        e->event = event;
        e->detail = detail;
        for (tail = &r->buffered; *tail; tail = &(*tail)->next)
                ;
        *tail = e;
        return 0;
}

static void drop_buffered(struct runtime_link *r) {
        while (r->buffered) {
                struct runtime_event *next = r->buffered->next;

                free(r->buffered);
                r->buffered = next;
        }
}

static int queue_request(struct runtime_link *r, enum runtime_op op, const char *uuid, const char *xml,
                         runtime_complete_t complete, runtime_done_t done, void *userdata) {
        struct runtime_request *q = calloc(1, sizeof(*q));

        if (!q)
                return -ENOMEM;
        *q = (struct runtime_request) { .op = op, .generation = r->generation, .complete = complete,
                                        .done = (void *) done, .userdata = userdata };
        if (uuid)
                snprintf(q->uuid, sizeof(q->uuid), "%s", uuid);
        if (xml && !(q->xml = strdup(xml))) {
                runtime_request_free(q);
                return -ENOMEM;
        }
        runtime_worker_queue(r->worker, q);
        return 0;
}

static void connect_complete(struct runtime_link *r, struct runtime_request *q);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        struct runtime_link *r = userdata;

        r->retry = sd_event_source_disable_unref(r->retry);
        (void) runtime_link_connect(r);
        return 0;
}

/* Lost or never reached: every stop waiting for it fails, the domains are unknown, a retry is set. */
static void connection_failed(struct runtime_link *r, const char *why) {
        uint64_t usec;
        int k;

        if (r->state == RUNTIME_UNREACHABLE)
                return;
        log_warning("libvirt at %s (host %s) is unreachable: %s", r->uri, r->name, why);
        free(r->error);
        r->error = strdup(why);
        r->state = RUNTIME_UNREACHABLE;
        r->generation++;
        clear_domains(r);
        drop_buffered(r);
        while (r->n_stops > 0)
                stop_finish(r, r->stops[0], -ECONNRESET, why);
        (void) queue_request(r, RUNTIME_OP_DISCONNECT, NULL, NULL, NULL, NULL, NULL);
        r->backoff_usec = r->backoff_usec ? r->backoff_usec * 2 : BACKOFF_MIN_USEC;
        if (r->backoff_usec > BACKOFF_MAX_USEC)
                r->backoff_usec = BACKOFF_MAX_USEC;
        k = sd_event_now(r->event, CLOCK_MONOTONIC, &usec);
        if (k >= 0)
                k = sd_event_add_time(r->event, &r->retry, CLOCK_MONOTONIC, usec + r->backoff_usec, 0,
                                      on_retry, r);
        if (k < 0)
                log_error_errno(k, "Failed to schedule a reconnection to libvirt at %s: %m", r->uri);
        if (r->cb->state_changed)
                r->cb->state_changed(r, r->userdata);
}

static void connect_complete(struct runtime_link *r, struct runtime_request *q) {
        if (q->generation != r->generation)
                return;
        if (q->r < 0)
                return connection_failed(r, q->message ?: strerror(-q->r));
        clear_domains(r);
        r->domains = TAKE_PTR(q->domains);
        r->n_domains = q->n_domains;
        q->n_domains = 0;
        r->state = RUNTIME_UP;
        r->error = mfree(r->error);
        r->backoff_usec = 0;
        log_info("libvirt at %s (host %s) is connected, %zu domains running", r->uri, r->name, r->n_domains);
        while (r->buffered) {
                struct runtime_event *e = r->buffered;

                r->buffered = e->next;
                apply_event(r, e->uuid, e->event, e->detail);
                free(e);
        }
        if (r->cb->state_changed)
                r->cb->state_changed(r, r->userdata);
}

int runtime_link_connect(struct runtime_link *r) {
        int k;

        r->retry = sd_event_source_disable_unref(r->retry);
        r->generation++;
        r->state = RUNTIME_CONNECTING;
        drop_buffered(r);
        k = queue_request(r, RUNTIME_OP_CONNECT, NULL, NULL, connect_complete, NULL, NULL);
        if (k < 0)
                return k;
        if (r->cb->state_changed)
                r->cb->state_changed(r, r->userdata);
        return 0;
}

static void start_complete(struct runtime_link *r, struct runtime_request *q) {
        runtime_done_t done = (runtime_done_t) q->done;

        /* Still listed as starting, so that the change is reported as the link's own. */
        if (q->r >= 0 && q->generation == r->generation)
                set_domain_state(r, q->uuid, "running", "booted");
        for (char **s = r->starting; s && *s; s++)
                if (strcasecmp(*s, q->uuid) == 0) {
                        free(*s);
                        memmove(s, s + 1, sizeof(*s) * (strv_length(s + 1) + 1));
                        break;
                }
        if (done)
                done(r, q->r, q->message, q->userdata);
}

int runtime_link_start(struct runtime_link *r, const char *uuid, const char *xml, runtime_done_t done,
                       void *userdata) {
        int k;

        if (r->state != RUNTIME_UP)
                return -ENOTCONN;
        k = strv_extend(&r->starting, uuid);
        if (k < 0)
                return k;
        return queue_request(r, RUNTIME_OP_START, uuid, xml, start_complete, done, userdata);
}

static void destroy_complete(struct runtime_link *r, struct runtime_request *q) {
        struct runtime_stop *s = find_stop(r, q->uuid);

        if (!s || q->generation != r->generation)
                return;
        if (q->r < 0 && !q->no_domain)
                return stop_finish(r, s, q->r, q->message);
        /* virDomainDestroy returns once the domain is gone; its event may come later or never. */
        set_domain_state(r, q->uuid, NULL, "destroyed");
        stop_finish(r, s, 0, NULL);
}

static int on_stop_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        struct runtime_stop *s = userdata;
        struct runtime_link *r = s->link;
        int k;

        s->timer = sd_event_source_disable_unref(s->timer);
        if (s->destroying)
                return 0;
        log_notice("Domain %s on host %s did not shut down in time, destroying it", s->uuid, r->name);
        s->destroying = true;
        k = queue_request(r, RUNTIME_OP_DESTROY, s->uuid, NULL, destroy_complete, NULL, NULL);
        if (k < 0)
                stop_finish(r, s, k, "out of memory");
        return 0;
}

static void shutdown_complete(struct runtime_link *r, struct runtime_request *q) {
        struct runtime_stop *s = find_stop(r, q->uuid);

        if (!s || q->generation != r->generation || s->destroying)
                return;
        if (q->no_domain || !runtime_link_domain_state(r, q->uuid)) {
                set_domain_state(r, q->uuid, NULL, "shutdown");
                return stop_finish(r, s, 0, NULL);
        }
        if (q->r < 0) { /* the guest cannot be asked (no ACPI): destroy now */
                s->timer = sd_event_source_disable_unref(s->timer);
                (void) on_stop_timeout(NULL, 0, s);
        }
        /* Else the STOPPED event, or the timeout, ends it. */
}

int runtime_link_stop(struct runtime_link *r, const char *uuid, uint64_t timeout_usec, runtime_done_t done,
                      void *userdata) {
        struct runtime_stop *s, **t;
        uint64_t now;
        int k;

        if (r->state != RUNTIME_UP)
                return -ENOTCONN;
        if (find_stop(r, uuid))
                return -EALREADY;
        k = sd_event_now(r->event, CLOCK_MONOTONIC, &now);
        if (k < 0)
                return k;
        t = realloc(r->stops, sizeof(*t) * (r->n_stops + 1));
        if (!t)
                return -ENOMEM;
        r->stops = t;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (struct runtime_stop) { .link = r, .done = done, .userdata = userdata };
        snprintf(s->uuid, sizeof(s->uuid), "%s", uuid);
        k = sd_event_add_time(r->event, &s->timer, CLOCK_MONOTONIC, now + timeout_usec, 0, on_stop_timeout, s);
        if (k >= 0)
                k = queue_request(r, RUNTIME_OP_SHUTDOWN, uuid, NULL, shutdown_complete, NULL, NULL);
        if (k < 0) {
                sd_event_source_disable_unref(s->timer);
                free(s);
                return k;
        }
        r->stops[r->n_stops++] = s;
        return 0;
}

static int on_wake(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct runtime_link *r = userdata;
        struct runtime_request *q;
        bool closed, lost = false;
        uint64_t n;
        int reason;

        (void) !read(fd, &n, sizeof(n));
        q = runtime_worker_take_results(r->worker, &closed, &reason);
        while (q) {
                struct runtime_request *next = q->next;

                lost = lost || (q->connection_lost && q->op != RUNTIME_OP_CONNECT &&
                                q->generation == r->generation);
                if (q->complete)
                        q->complete(r, q);
                runtime_request_free(q);
                q = next;
        }
        if (closed && r->state == RUNTIME_UP)
                connection_failed(r, reason == VIR_CONNECT_CLOSE_REASON_KEEPALIVE ?
                                  "keepalive timed out" : "connection closed");
        else if (lost && r->state == RUNTIME_UP)
                connection_failed(r, "connection lost");
        return 0;
}

int runtime_link_new(sd_event *event, const char *name, const char *uri, const struct runtime_callbacks *cb,
                     void *userdata, struct runtime_link **ret) {
        struct runtime_link *r = calloc(1, sizeof(*r));
        pthread_t thread;
        int k;

        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(event);
        r->cb = cb;
        r->userdata = userdata;
        r->name = strdup(name);
        r->uri = strdup(uri);
        k = r->name && r->uri ? runtime_worker_new(uri, &r->worker) : -ENOMEM;
        if (k >= 0) {
                r->worker->link = r;
                r->worker->on_lifecycle = VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle);
                k = sd_event_add_io(event, &r->wake_source, r->worker->wake_fd, EPOLLIN, on_wake, r);
        }
        if (k >= 0)
                k = runtime_worker_start(r->worker, &thread);
        if (k < 0) {
                runtime_link_free(r);
                return k;
        }
        pthread_detach(thread);
        *ret = r;
        return 0;
}

/* Answers the requests of a list that will never run (the link is going away). */
static void cancel_requests(struct runtime_link *r, struct runtime_request *q) {
        while (q) {
                struct runtime_request *next = q->next;

                if (q->done)
                        ((runtime_done_t) q->done)(r, -ECANCELED, "the runtime link is gone", q->userdata);
                runtime_request_free(q);
                q = next;
        }
}

static void worker_release(struct runtime_link *r) {
        struct runtime_request *q, *current_done;
        runtime_done_t done = NULL;
        void *userdata = NULL;
        bool closed;
        int reason;

        /* Requests not run yet answer now; the one running is answered now too and its result dropped
         * when the worker is done with it (the worker then disconnects and exits). */
        pthread_mutex_lock(&r->worker->lock);
        q = TAKE_PTR(r->worker->queue);
        current_done = r->worker->current;
        if (current_done) {
                done = (runtime_done_t) current_done->done;
                userdata = current_done->userdata;
                current_done->done = NULL;
        }
        r->worker->quit = true;
        r->worker->link = NULL;
        pthread_cond_signal(&r->worker->cond);
        pthread_mutex_unlock(&r->worker->lock);
        if (done)
                done(r, -ECANCELED, "the runtime link is gone", userdata);
        cancel_requests(r, q);
        cancel_requests(r, runtime_worker_take_results(r->worker, &closed, &reason));
        runtime_worker_unref(r->worker);
}

struct runtime_link *runtime_link_free(struct runtime_link *r) {
        if (!r)
                return NULL;
        r->generation++;
        while (r->n_stops > 0)
                stop_finish(r, r->stops[0], -ECANCELED, "the runtime link is gone");
        if (r->worker)
                worker_release(r);
        sd_event_source_disable_unref(r->wake_source);
        sd_event_source_disable_unref(r->retry);
        clear_domains(r);
        drop_buffered(r);
        strv_free(r->starting);
        free(r->stops);
        free(r->error);
        free(r->name);
        free(r->uri);
        sd_event_unref(r->event);
        return mfree(r);
}
