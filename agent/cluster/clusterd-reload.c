/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reloading clusterd.conf (SIGHUP, `systemctl reload gpupass-clusterd`). The admin group changes at
 * once. Hosts are matched by name: a new section connects a new host, a removed one is dropped from the
 * view (its VMs keep their records, as for an unreachable host), a changed Address reconnects. Jobs in
 * flight (PowerOn, PowerOff, maintenance) hold host pointers and per-host arrays, so host changes wait
 * until none runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "bus/cluster-objects.h"
#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "group-lookup.h"
#include "lifecycle/placement-view.h"
#include "link/hostlink.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

int clusterd_config_path(char **ret) {
        const char *dir = getenv("CONFIGURATION_DIRECTORY");

        if (!dir || !*dir)
                dir = "/etc/gpupass";
        /* systemd may pass several directories separated by ':'; ours is the first. */
        return asprintf(ret, "%.*s/%s", (int) strcspn(dir, ":"), dir, CLUSTERD_CONFIG_FILE) < 0 ? -ENOMEM : 0;
}

void clusterd_resolve_admin_group(struct clusterd *c) {
        /* As the agent does (group-lookup.h): getgrnam() here would map NSS modules for good. */
        gid_t gid;
        int r = group_lookup_gid(c->config.admin_group, &gid);

        c->admin_gid_valid = r >= 0;
        if (r >= 0)
                c->admin_gid = gid;
        else
                log_notice("Admin group %s cannot be resolved (%s): only root may change the cluster",
                           c->config.admin_group, strerror(-r));
}

static struct hostlink *take_link(struct hostlink **links, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (links[i] && strcmp(links[i]->name, name) == 0)
                        return TAKE_PTR(links[i]);
        return NULL;
}

/* Committed: drop what is gone or readdressed, connect what is new. The Host objects and placement's
 * records point at the links, so they go first and are built again over the new list. */
static void hosts_commit(struct clusterd *c, struct hostlink **links, bool *fresh, size_t n) {
        size_t n_old = c->n_hosts;
        struct hostlink **old = c->hosts;
        _cleanup_strv_free_ char **old_paths = NULL;
        bool had_views = c->host_views;
        int r;

        for (size_t k = 0; c->host_views && k < n_old; k++)
                if (strv_extend(&old_paths, c->host_views[k].path) < 0)
                        log_error_errno(-ENOMEM, "Host objects: removals will not be announced: %m");
        host_views_free(c);
        c->placement = placement_view_free(c->placement);
        for (size_t i = 0; i < n; i++)
                if (!fresh[i])
                        (void) take_link(old, n_old, links[i]->name);
        for (size_t k = 0; k < n_old; k++)
                if (old[k]) {
                        log_full(LOG_NOTICE, NULL, "Host %s (%s) removed from the configuration", old[k]->name,
                                 old[k]->configured_address);
                        hostlink_free(old[k]);
                }
        free(old);
        c->hosts = links;
        c->n_hosts = n;
        if (had_views && (r = host_views_rebuild(c, old_paths)) < 0)
                log_error_errno(r, "Failed to rebuild the Host objects: %m");
        r = placement_view_new(c, &c->placement);
        if (r < 0)
                log_error_errno(r, "Failed to rebuild the placement view, no VM can be placed: %m");
        for (size_t i = 0; i < n; i++)
                if (fresh[i]) {
                        log_info("Host %s (%s) added", links[i]->name, links[i]->configured_address);
                        (void) hostlink_connect(links[i]);
                }
}

/* Builds the new host list first, so that a host whose Address cannot be used changes nothing. */
static int clusterd_apply_hosts(struct clusterd *c) {
        size_t n = c->config.n_hosts, n_old = c->n_hosts;
        struct hostlink **links, **old = c->hosts;
        bool *fresh;
        int r = 0;

        links = calloc(n ?: 1, sizeof(*links));
        fresh = calloc(n ?: 1, sizeof(*fresh));
        if (!links || !fresh) {
                free(links);
                free(fresh);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                const struct host_config *h = &c->config.hosts[i];

                for (size_t k = 0; k < n_old; k++)
                        if (strcmp(old[k]->name, h->name) == 0 && strcmp(old[k]->configured_address, h->address) == 0)
                                links[i] = old[k];
                if (links[i])
                        continue;
                r = clusterd_host_new(c, h, &links[i]);
                if (r < 0)
                        log_error_errno(r, "Host %s: bad Address %s: %m", h->name, h->address);
                fresh[i] = r >= 0;
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        if (fresh[i])
                                hostlink_free(links[i]);
                free(links);
                free(fresh);
                return r;
        }

        hosts_commit(c, links, fresh, n);
        free(fresh);
        (void) clusterd_runtime_sync(c); /* logs what it could not set up */
        clusterd_host_changed(c, NULL);
        return 0;
}

static int on_reload_defer(sd_event_source *s, void *userdata) {
        struct clusterd *c = userdata;

        c->reload_defer = sd_event_source_disable_unref(c->reload_defer);
        (void) clusterd_reload(c);
        return 0;
}

void clusterd_job_begin(struct clusterd *c) {
        c->jobs++;
}

void clusterd_job_end(struct clusterd *c) {
        if (c->jobs > 0)
                c->jobs--;
        /* Deferred to a clean stack: the job ends inside a reply callback on a host's connection, which the
         * reload may close. */
        if (c->jobs == 0 && c->reload_pending && !c->reload_defer)
                (void) sd_event_add_defer(c->event, &c->reload_defer, on_reload_defer, c);
}

int clusterd_reload(struct clusterd *c) {
        _cleanup_free_ char *path = NULL;
        struct clusterd_config fresh = {};
        bool group_changed;
        int line = 0, r;

        (void) sd_notify(false, "RELOADING=1");
        r = clusterd_config_path(&path);
        if (r >= 0)
                r = clusterd_config_load(&fresh, path, &line);
        /* Every Address must be usable before anything changes. */
        for (size_t i = 0; r >= 0 && i < fresh.n_hosts; i++) {
                _cleanup_free_ char *bus_address = NULL;

                if (!fresh.hosts[i].address ||
                    host_address_to_bus_address(fresh.hosts[i].address, &bus_address) < 0) {
                        log_error("%s: host %s has no usable Address", path, fresh.hosts[i].name);
                        r = -EINVAL;
                }
        }
        if (r < 0) {
                if (r == -EINVAL && line > 0)
                        log_error("%s:%d: invalid setting (unknown key, bad host name or second Address)", path, line);
                log_error_errno(r, "Reload failed, the configuration stays as it was: %m");
                clusterd_config_done(&fresh);
                (void) sd_notify(false, "READY=1");
                return r;
        }

        /* The web console reads AdminGroup to decide whom it offers the changing actions. */
        group_changed = !streq_ptr(c->config.admin_group, fresh.admin_group);
        clusterd_config_done(&c->config);
        c->config = fresh;
        clusterd_resolve_admin_group(c);
        if (group_changed && c->bus)
                (void) sd_bus_emit_properties_changed(c->bus, GPUPASS_CLUSTER_MANAGER_PATH,
                                                      GPUPASS_CLUSTER_MANAGER_IFACE, "AdminGroup", NULL);
        c->reload_pending = c->jobs > 0;
        if (c->reload_pending)
                log_info("Configuration reloaded (AdminGroup=%s); host changes wait for %u running calls",
                         c->config.admin_group, c->jobs);
        else {
                r = clusterd_apply_hosts(c);
                if (r < 0)
                        log_error_errno(r, "Host list not changed: %m"); /* only out of memory */
                else
                        log_info("Configuration reloaded: AdminGroup=%s, %zu hosts", c->config.admin_group,
                                 c->n_hosts);
        }
        (void) sd_notify(false, "READY=1");
        return 0;
}
