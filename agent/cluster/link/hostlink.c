/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpupass/bus-names.h"
#include "link/hostlink.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

#define BACKOFF_MIN_USEC (250 * 1000ULL)
#define BACKOFF_MAX_USEC (30 * 1000 * 1000ULL)

int hostlink_new(sd_event *event, const char *name, const char *configured_address, const char *bus_address,
                 const struct hostlink_callbacks *callbacks, void *userdata, struct hostlink **ret) {
        struct hostlink *l;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->event = event;
        l->callbacks = callbacks;
        l->userdata = userdata;
        l->state = LINK_CONNECTING;
        l->backoff_usec = BACKOFF_MIN_USEC;
        l->name = strdup(name);
        l->configured_address = strdup(configured_address);
        l->bus_address = strdup(bus_address);
        if (!l->name || !l->configured_address || !l->bus_address) {
                hostlink_free(l);
                return -ENOMEM;
        }
        *ret = l;
        return 0;
}

/* The dropped connection goes once the callback that dropped it has returned: its calls fail first. */
static int on_close_defer(sd_event_source *s, void *userdata) {
        struct hostlink *l = userdata;

        l->close_defer = sd_event_source_disable_unref(l->close_defer);
        hostlink_calls_flush(l);
        l->closing = sd_bus_flush_close_unref(l->closing);
        return 0;
}

/* The connection leaves the event loop now; it is closed, and its calls failed, once the callback that
 * dropped it has returned (deferred), or at once when the link goes (defer false). */
static void hostlink_drop_bus(struct hostlink *l, bool defer) {
        hostlink_io_detach(l);
        if (l->bus)
                (void) sd_bus_detach_event(l->bus);
        hostlink_calls_disconnected(l);
        if (l->closing) /* a second drop before the first was done with: finish the first now */
                on_close_defer(NULL, l);
        l->closing = TAKE_PTR(l->bus);
        if (!defer)
                on_close_defer(NULL, l);
        else if (sd_event_add_defer(l->event, &l->close_defer, on_close_defer, l) < 0) {
                log_error("Host %s: cannot defer closing its connection: closed now", l->name);
                on_close_defer(NULL, l);
        }
}

struct hostlink *hostlink_free(struct hostlink *l) {
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->retry);
        free(l->error);
        l->error = strdup("host removed");
        hostlink_drop_bus(l, false);
        hostlink_clear_gpus(l);
        free(l->name);
        free(l->configured_address);
        free(l->bus_address);
        free(l->error);
        free(l);
        return NULL;
}

const char *hostlink_state_to_string(const struct hostlink *l) {
        switch (l->state) {
        case LINK_CONNECTING:
                return "connecting";
        case LINK_UNREACHABLE:
                return "unreachable";
        case LINK_UP:
        default:
                return l->maintenance ? "maintenance" : "up";
        }
}

struct cluster_gpu *hostlink_find_gpu(struct hostlink *l, const char *address) {
        for (size_t i = 0; i < l->n_gpus; i++)
                if (strcmp(l->gpus[i]->address, address) == 0)
                        return l->gpus[i];
        return NULL;
}

struct cluster_gpu *hostlink_find_group(struct hostlink *l, int group) {
        for (size_t i = 0; group >= 0 && i < l->n_gpus; i++)
                if (l->gpus[i]->iommu_group == group)
                        return l->gpus[i];
        return NULL;
}

static void report_changed(struct hostlink *l) {
        if (l->callbacks->changed)
                l->callbacks->changed(l, l->userdata);
}

static void report_identity(struct hostlink *l, const char *address, const char *old_model, const char *new_model) {
        if (l->callbacks->identity_changed)
                l->callbacks->identity_changed(l, address, old_model, new_model, l->userdata);
}

static void hostlink_schedule_reconnect(struct hostlink *l, const char *why);

/* The connection stays, the agent is not on it: NameOwnerChanged brings it back at once. */
static void hostlink_agent_absent(struct hostlink *l, const char *why) {
        if (l->state != LINK_UNREACHABLE || !streq_ptr(l->error, why))
                log_struct(LOG_WARNING, NULL, NULL, l->name, "Host %s is unreachable: %s", l->name, why);
        l->state = LINK_UNREACHABLE;
        free(l->error);
        l->error = strdup(why);
        report_changed(l);
}

/* Whether pairs (address, previous model) lists that change already. */
static bool known_change(char **pairs, const char *address, const char *previous_model) {
        for (char **p = pairs; p && p[0] && p[1]; p += 2)
                if (strcmp(p[0], address) == 0 && strcmp(p[1], previous_model) == 0)
                        return true;
        return false;
}

static int on_managed_objects(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct hostlink *l = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        bool returned;
        int r;

        /* After dropping the connection, return 1 (handled): sd-bus, on a 0 from a reply callback, goes on
         * processing the bus it called us on (writing its queue) and aborts on one that is closed. A
         * method call that timed out (the agent hangs) came this way and took clusterd down. */
        if (e && sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                /* The host's bus is there, its agent is not running: waiting for its name is quicker
                 * than reconnecting with backoff (up to 30 s late). */
                hostlink_agent_absent(l, "the agent is not running");
                return 1;
        }
        if (e) {
                hostlink_schedule_reconnect(l, e->message ?: e->name);
                return 1;
        }
        /* What was known of the identity changes: a reload (the agent's maintenance flag changed, say)
         * reports only the new ones. */
        _cleanup_strv_free_ char **known = NULL;
        for (size_t i = 0; i < l->n_gpus; i++)
                if (l->gpus[i]->previous_model && l->gpus[i]->previous_model[0] &&
                    (strv_extend(&known, l->gpus[i]->address) < 0 ||
                     strv_extend(&known, l->gpus[i]->previous_model) < 0))
                        break; /* reported again, at worst */
        hostlink_clear_gpus(l);
        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;

                r = sd_bus_message_read(reply, "o", &path);
                if (r >= 0)
                        r = hostlink_read_object(l, reply, path);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0) {
                hostlink_schedule_reconnect(l, "the agent's object list could not be parsed");
                return 1;
        }
        /* Identity changes the agent found at its start-up (a reflash and a reboot) come as PreviousModel. */
        for (size_t i = 0; i < l->n_gpus; i++)
                if (l->gpus[i]->previous_model && l->gpus[i]->previous_model[0] &&
                    !known_change(known, l->gpus[i]->address, l->gpus[i]->previous_model))
                        report_identity(l, l->gpus[i]->address, l->gpus[i]->previous_model, l->gpus[i]->model ?: "");
        returned = l->state != LINK_UP;
        if (returned)
                log_struct(LOG_INFO, NULL, NULL, l->name, "Host %s is up: %zu GPUs", l->name, l->n_gpus);
        l->state = LINK_UP;
        l->backoff_usec = BACKOFF_MIN_USEC;
        l->error = mfree(l->error);
        report_changed(l);
        if (returned && l->callbacks->up)
                l->callbacks->up(l, l->userdata);
        return 0;
}

static int on_manager_properties(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct hostlink *l = userdata;
        int r;

        if (sd_bus_message_is_method_error(reply, NULL))
                return 0; /* GetManagedObjects reports the failure */
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name;
                int b;

                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        break;
                if (strcmp(name, "CpuCount") == 0)
                        r = sd_bus_message_read(reply, "v", "u", &l->cpus);
                else if (strcmp(name, "MemoryMiB") == 0)
                        r = sd_bus_message_read(reply, "v", "t", &l->memory_mib);
                else if (strcmp(name, "Maintenance") == 0) {
                        r = sd_bus_message_read(reply, "v", "b", &b);
                        l->maintenance = b;
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        report_changed(l);
        return 0;
}

/* Loads everything: the manager's properties and every object. */
static int hostlink_load(struct hostlink *l) {
        int r;

        r = sd_bus_call_method_async(l->bus, NULL, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH,
                                     "org.freedesktop.DBus.Properties", "GetAll", on_manager_properties, l, "s",
                                     GPUPASS_AGENT_MANAGER_IFACE);
        if (r < 0)
                return r;
        return sd_bus_call_method_async(l->bus, NULL, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH,
                                        "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                                        on_managed_objects, l, NULL);
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct hostlink *l = userdata;
        const char *path = sd_bus_message_get_path(m), *interface;
        _cleanup_free_ char *old_owner = NULL;
        struct cluster_gpu *g;
        int r;

        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0)
                return 0;
        if (strcmp(interface, GPUPASS_AGENT_MANAGER_IFACE) == 0)
                return hostlink_load(l), 0; /* maintenance and the like: rare, reload */
        if (strcmp(interface, GPUPASS_AGENT_GPU_IFACE) != 0)
                return 0;
        g = hostlink_find_gpu_by_path(l, path);
        if (!g)
                return hostlink_load(l), 0;
        old_owner = strdup(g->owner ?: "");
        if (!old_owner || hostlink_read_gpu_properties(m, g) < 0)
                return hostlink_load(l), 0;
        report_changed(l);
        if (strcmp(old_owner, g->owner ?: "") != 0 && l->callbacks->owner_changed)
                l->callbacks->owner_changed(l, g, old_owner, l->userdata);
        return 0;
}

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct hostlink *l = userdata;
        const char *path;

        if (sd_bus_message_read(m, "o", &path) < 0 || hostlink_read_object(l, m, path) < 0)
                return hostlink_load(l), 0;
        report_changed(l);
        return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct hostlink *l = userdata;
        const char *path;

        if (sd_bus_message_read(m, "o", &path) < 0)
                return 0;
        for (size_t i = 0; i < l->n_gpus; i++)
                if (strcmp(l->gpus[i]->path, path) == 0) {
                        cluster_gpu_free(l->gpus[i]);
                        memmove(l->gpus + i, l->gpus + i + 1, sizeof(*l->gpus) * (l->n_gpus - i - 1));
                        l->n_gpus--;
                        break;
                }
        report_changed(l);
        return 0;
}

static int on_identity_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct hostlink *l = userdata;
        const char *path, *old_model, *new_model;

        struct cluster_gpu *g;

        if (sd_bus_message_read(m, "oss", &path, &old_model, &new_model) < 0)
                return 0;
        g = hostlink_find_gpu_by_path(l, path);
        log_struct(LOG_NOTICE, g ? g->address : NULL, NULL, l->name,
                   "Host %s reports a GPU identity change at %s: %s -> %s", l->name, g ? g->address : path, old_model,
                   new_model);
        if (g)
                report_identity(l, g->address, old_model, new_model);
        return 0;
}

static int on_agent_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *path = sd_bus_message_get_path(m);

        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Properties", "PropertiesChanged"))
                return on_properties_changed(m, userdata, ret_error);
        if (!path || strcmp(path, GPUPASS_AGENT_MANAGER_PATH) != 0)
                return 0;
        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.ObjectManager", "InterfacesAdded"))
                return on_interfaces_added(m, userdata, ret_error);
        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved"))
                return on_interfaces_removed(m, userdata, ret_error);
        if (sd_bus_message_is_signal(m, GPUPASS_AGENT_MANAGER_IFACE, "IdentityChanged"))
                return on_identity_changed(m, userdata, ret_error);
        return 0;
}

/* The agent's name came or went (an agent restart without a bus restart). */
static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct hostlink *l = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
            strcmp(name, GPUPASS_AGENT_BUS_NAME) != 0)
                return 0;
        if (*new_owner)
                (void) hostlink_load(l);
        else
                hostlink_agent_absent(l, "the agent left the bus");
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        hostlink_schedule_reconnect(userdata, "connection lost");
        return 1; /* the connection is gone: nothing else may look at this message (see on_managed_objects) */
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        return hostlink_connect(userdata);
}

static void hostlink_schedule_reconnect(struct hostlink *l, const char *why) {
        bool was_up = l->state == LINK_UP;
        int r;

        if (was_up || l->state == LINK_CONNECTING)
                log_struct(LOG_WARNING, NULL, NULL, l->name, "Host %s is unreachable: %s; retrying in %llu ms", l->name, why,
                            (unsigned long long) (l->backoff_usec / 1000));
        l->state = LINK_UNREACHABLE;
        free(l->error);
        l->error = strdup(why);
        /* The objects stay as last seen: the view shows what the host had, marked unreachable. */
        hostlink_drop_bus(l, true);
        l->retry = sd_event_source_disable_unref(l->retry);
        r = sd_event_add_time_relative(l->event, &l->retry, CLOCK_MONOTONIC, l->backoff_usec, 0,
                                       on_retry, l);
        if (r < 0)
                log_error_errno(r, "Cannot schedule a reconnection to %s: %m", l->name);
        l->backoff_usec = l->backoff_usec * 2 > BACKOFF_MAX_USEC ? BACKOFF_MAX_USEC : l->backoff_usec * 2;
        report_changed(l);
}

void hostlink_connection_failed(struct hostlink *l, const char *why) {
        hostlink_schedule_reconnect(l, why);
}

static int hostlink_try_connect(struct hostlink *l);

int hostlink_connect(struct hostlink *l) {
        int r;

        /* A host that cannot be reached now is retried with backoff, like one that goes away later. */
        r = hostlink_try_connect(l);
        if (r < 0)
                hostlink_schedule_reconnect(l, strerror(-r));
        return 0;
}

static int hostlink_try_connect(struct hostlink *l) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, l->bus_address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, true);
        if (r >= 0)
                r = sd_bus_set_description(bus, l->name);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        l->bus = bus;
        r = hostlink_io_attach(l);
        if (r < 0)
                return r; /* the caller schedules the retry, which closes the bus */

        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, l);
        /* One match for all of the agent's signals, dispatched here: each match is an AddMatch round trip
         * per host at every connection. */
        if (r >= 0)
                r = sd_bus_add_match_async(bus, NULL, "type='signal',sender='" GPUPASS_AGENT_BUS_NAME "'",
                                           on_agent_signal, NULL, l);
        if (r >= 0)
                r = sd_bus_add_match_async(bus, NULL,
                                           "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                                           "arg0='" GPUPASS_AGENT_BUS_NAME "'", on_name_owner_changed, NULL, l);
        if (r >= 0)
                r = hostlink_load(l);
        return r;
}
