/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include <libvirt/libvirt.h>

/*
 * The worker thread of one runtime link (runtime-libvirt.c): it owns the libvirt connection and makes
 * every blocking libvirt call, one request at a time, in the order queued. Results go back on a second
 * queue and the eventfd wakes the main thread. The worker state outlives the link when the link is
 * freed while a call is still running: whoever drops the last reference frees it.
 */
enum runtime_op {
        RUNTIME_OP_CONNECT,    /* open, close callback, keepalive, lifecycle events, list running domains */
        RUNTIME_OP_START,      /* virDomainCreateXML */
        RUNTIME_OP_SHUTDOWN,   /* virDomainShutdown (ACPI) */
        RUNTIME_OP_DESTROY,    /* virDomainDestroy */
        RUNTIME_OP_DISCONNECT, /* deregister, close */
};

struct runtime_domain {
        char uuid[VIR_UUID_STRING_BUFLEN];
        char *state;
};

struct runtime_link;
struct runtime_request;
typedef void (*runtime_complete_t)(struct runtime_link *l, struct runtime_request *q);

struct runtime_request {
        enum runtime_op op;
        char uuid[VIR_UUID_STRING_BUFLEN];
        char *xml;
        unsigned generation;      /* the connection it was queued for (runtime_link.generation) */
        runtime_complete_t complete; /* main thread, with the result */
        void *done;               /* the caller's runtime_done_t and its userdata */
        void *userdata;
        /* The result. */
        int r;
        char *message;            /* libvirt's error */
        bool no_domain;           /* the domain was not running */
        bool connection_lost;     /* the call failed and the connection is dead */
        struct runtime_domain *domains;
        size_t n_domains;
        struct runtime_request *next;
};

struct runtime_worker {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned refs;
        bool quit;
        struct runtime_request *queue, *results;
        struct runtime_request *current; /* the request in the worker's hands */
        bool closed;              /* libvirt's close callback ran (any thread) */
        int close_reason;
        int wake_fd;              /* eventfd read by the main thread */
        char *uri;
        virConnectPtr conn;       /* the worker's */
        int event_id;
        virConnectDomainEventGenericCallback on_lifecycle; /* registered at connect, opaque: this */
        struct runtime_link *link; /* main thread only: NULL once the link is freed */
};

struct runtime_request *runtime_request_free(struct runtime_request *q);
int runtime_worker_new(const char *uri, struct runtime_worker **ret);
/* The thread runs until quit; it holds a reference of its own. */
int runtime_worker_start(struct runtime_worker *w, pthread_t *ret);
void runtime_worker_unref(struct runtime_worker *w);
void runtime_worker_queue(struct runtime_worker *w, struct runtime_request *q);
/* The results so far, oldest first, and whether the close callback ran since the last call. */
struct runtime_request *runtime_worker_take_results(struct runtime_worker *w, bool *ret_closed,
                                                    int *ret_close_reason);
/* Fills the domain fields from virDomainGetState's values. */
const char *runtime_state_to_string(int state);
