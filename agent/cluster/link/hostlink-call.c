/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The aggregator's calls to an agent (Claim, Release, SetMaintenance), each answered exactly once.
 *
 * Why not plain sd_bus_call_method_async(): when a connection is closed, sd-bus drops the reply callbacks
 * of the calls still waiting without calling them, and the caller (an operator's PowerOn) would wait for
 * ever. Here every call is listed on its link; a dropped connection moves its calls to failed_calls and
 * they are answered HostUnreachable from a deferred event, on a clean stack: never from inside a callback
 * of the connection being closed, whose sd_bus_process() is still running.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpupass/bus-names.h"
#include "link/hostlink.h"
#include "macro.h"

struct hostlink_call {
        struct hostlink_call *prev, *next;
        struct hostlink *link;
        sd_bus_slot *slot;
        hostlink_reply_t done;
        void *userdata;
        /* Claim/Release: applied to the view on success. */
        int group;
        char *path;
        char *owner_after; /* Claim: the VM; Release: "" */
        int maintenance;   /* SetMaintenance: the value; -1 otherwise */
};

static void call_unlink(struct hostlink_call **list, struct hostlink_call *k) {
        if (k->prev)
                k->prev->next = k->next;
        else
                *list = k->next;
        if (k->next)
                k->next->prev = k->prev;
        k->prev = k->next = NULL;
}

static void call_push(struct hostlink_call **list, struct hostlink_call *k) {
        k->prev = NULL;
        k->next = *list;
        if (*list)
                (*list)->prev = k;
        *list = k;
}

static void call_free(struct hostlink_call *k) {
        sd_bus_slot_unref(k->slot);
        free(k->path);
        free(k->owner_after);
        free(k);
}

/* Every GPU of the group (or the one GPU without a group) gets the owner the agent now records. */
static void apply_owner(struct hostlink *l, const struct hostlink_call *k) {
        for (size_t i = 0; i < l->n_gpus; i++) {
                struct cluster_gpu *g = l->gpus[i];
                char *owner;

                if (k->group >= 0 ? g->iommu_group != k->group : strcmp(g->path, k->path) != 0)
                        continue;
                owner = strdup(k->owner_after);
                if (!owner)
                        continue; /* the agent's PropertiesChanged brings it */
                free(g->owner);
                g->owner = owner;
        }
}

static void apply_success(struct hostlink *l, const struct hostlink_call *k) {
        if (k->owner_after)
                apply_owner(l, k);
        if (k->maintenance >= 0 && l->maintenance != (bool) k->maintenance) {
                l->maintenance = k->maintenance;
                if (l->callbacks->changed)
                        l->callbacks->changed(l, l->userdata);
        }
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct hostlink_call *k = userdata;
        struct hostlink *l = k->link;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        call_unlink(&l->calls, k);
        if (!e)
                apply_success(l, k);
        k->done(l, e, k->userdata);
        call_free(k);
        /* 1: handled. The callback may have dropped this connection (see on_managed_objects). */
        return 1;
}

static int call_start(struct hostlink *l, struct hostlink_call *k, const char *path, const char *interface,
                      const char *member, const char *types, const void *arg) {
        int r;

        if (!l->bus || l->state != LINK_UP) {
                call_free(k);
                return -ENOTCONN;
        }
        k->link = l;
        if (strcmp(types, "b") == 0)
                r = sd_bus_call_method_async(l->bus, &k->slot, GPUPASS_AGENT_BUS_NAME, path, interface, member,
                                             on_reply, k, types, *(const int *) arg);
        else
                r = sd_bus_call_method_async(l->bus, &k->slot, GPUPASS_AGENT_BUS_NAME, path, interface, member,
                                             on_reply, k, types, (const char *) arg);
        if (r < 0) {
                call_free(k);
                return r;
        }
        call_push(&l->calls, k);
        return 0;
}

static struct hostlink_call *call_new(hostlink_reply_t done, void *userdata) {
        struct hostlink_call *k = calloc(1, sizeof(*k));

        if (!k)
                return NULL;
        k->done = done;
        k->userdata = userdata;
        k->group = -1;
        k->maintenance = -1;
        return k;
}

static int gpu_call(struct hostlink *l, struct cluster_gpu *g, const char *method, const char *vm,
                    const char *owner_after, hostlink_reply_t done, void *userdata) {
        struct hostlink_call *k = call_new(done, userdata);

        if (!k)
                return -ENOMEM;
        k->group = g->iommu_group;
        k->path = strdup(g->path);
        k->owner_after = strdup(owner_after);
        if (!k->path || !k->owner_after) {
                call_free(k);
                return -ENOMEM;
        }
        return call_start(l, k, g->path, GPUPASS_AGENT_GPU_IFACE, method, "s", vm);
}

int hostlink_claim(struct hostlink *l, struct cluster_gpu *g, const char *vm, hostlink_reply_t done, void *userdata) {
        return gpu_call(l, g, "Claim", vm, vm, done, userdata);
}

int hostlink_release(struct hostlink *l, struct cluster_gpu *g, const char *vm, hostlink_reply_t done,
                     void *userdata) {
        return gpu_call(l, g, "Release", vm, "", done, userdata);
}

int hostlink_set_maintenance(struct hostlink *l, bool enable, hostlink_reply_t done, void *userdata) {
        struct hostlink_call *k = call_new(done, userdata);
        int value = enable;

        if (!k)
                return -ENOMEM;
        k->maintenance = enable;
        return call_start(l, k, GPUPASS_AGENT_MANAGER_PATH, GPUPASS_AGENT_MANAGER_IFACE, "SetMaintenance", "b",
                          &value);
}

static void calls_fail(struct hostlink *l, const char *name, const char *why) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        (void) sd_bus_error_setf(&e, name, "%s", why);
        while (l->failed_calls) {
                struct hostlink_call *k = l->failed_calls;

                call_unlink(&l->failed_calls, k);
                /* The slot goes first: sd-bus must not call on_reply for it any more. */
                k->slot = sd_bus_slot_unref(k->slot);
                k->done(l, &e, k->userdata);
                call_free(k);
        }
}

void hostlink_calls_flush(struct hostlink *l) {
        _cleanup_free_ char *why = NULL;

        if (asprintf(&why, "Lost host %s before it answered: %s", l->name, l->error ?: "connection closed") < 0)
                why = NULL;
        calls_fail(l, GPUPASS_ERROR_HOST_UNREACHABLE, why ?: "Lost the host before it answered");
}

void hostlink_calls_fail(struct hostlink *l, const char *name, const char *why) {
        hostlink_calls_disconnected(l);
        calls_fail(l, name, why);
}

void hostlink_calls_disconnected(struct hostlink *l) {
        while (l->calls) {
                struct hostlink_call *k = l->calls;

                call_unlink(&l->calls, k);
                call_push(&l->failed_calls, k);
        }
}
