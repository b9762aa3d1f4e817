/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "fileio.h"
#include "gpu.h"
#include "iommu-group.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "pci-access.h"
#include "pci-identity.h"
#include "strv.h"
#include "sysfs-pci.h"

int manager_new(struct manager **ret) {
        struct manager *m;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *ret = m;
        return 0;
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_gpus; i++)
                gpu_free(m->gpus[i]);
        free(m->gpus);
        sd_event_source_disable_unref(m->monitor_source);
        udev_monitor_unref(m->monitor);
        udev_unref(m->udev);
        pci_access_close(m->pacc);
        ledger_done(&m->loaded);
        ledger_done(&m->inventory);
        strv_free(m->pending_identity_signals);
        free(m->state_problem);
        free(m->status_sent);
        free(m->state_dir);
        free(m->passthrough_dir);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        agent_config_done(&m->config);
        free(m);
        return NULL;
}

struct gpu *manager_find_gpu(struct manager *m, const char *address) {
        char canonical[PCI_ADDRESS_MAX];

        /* Sysfs names and the agent's own paths are canonical already: look before formatting one. */
        for (size_t i = 0; i < m->n_gpus; i++)
                if (strcmp(m->gpus[i]->address, address) == 0)
                        return m->gpus[i];
        if (pci_address_normalize(address, canonical) < 0)
                return NULL;
        for (size_t i = 0; i < m->n_gpus; i++)
                if (strcmp(m->gpus[i]->address, canonical) == 0)
                        return m->gpus[i];
        return NULL;
}

static int compare_gpus(const void *a, const void *b) {
        return strcmp((*(struct gpu * const *) a)->address, (*(struct gpu * const *) b)->address);
}

static int manager_insert_gpu(struct manager *m, struct gpu *g);

static int manager_add_gpu(struct manager *m, const char *address) {
        struct gpu *g;
        int r;

        r = gpu_new(m, address, &g);
        if (r < 0)
                return r;
        r = gpu_refresh(g);
        if (r < 0) {
                gpu_free(g);
                return r;
        }
        r = manager_insert_gpu(m, g);
        if (r < 0) {
                gpu_free(g);
                return r;
        }

        log_full(LOG_INFO, g->address, "Found GPU %s: %s (%s), IOMMU group %d, %s", g->address, g->model, g->mode,
                 g->iommu_group, gpu_state_to_string(g->state));
        /* Release resets a GPU so that the next VM gets it clean; the kernel offers no way to reset this one. */
        if (!g->reset_method)
                log_full(LOG_WARNING, g->address, "GPU %s has no reset method (no sysfs reset_method): what one VM "
                         "leaves in it can be seen by the next", g->address);
        (void) manager_emit_gpu_added(m, g);
        if (m->bus_ready)
                (void) manager_check_identity(m, g); /* at start-up, apply_state() does it after the claims */
        return 0;
}

void manager_set_group_job(struct manager *m, int group, bool running) {
        for (size_t i = 0; i < m->n_gpus; i++)
                if (m->gpus[i]->iommu_group == group)
                        m->gpus[i]->job_running = running;
}

static int manager_insert_gpu(struct manager *m, struct gpu *g) {
        struct gpu **t;

        t = realloc(m->gpus, sizeof(*t) * (m->n_gpus + 1));
        if (!t)
                return -ENOMEM;
        m->gpus = t;
        m->gpus[m->n_gpus++] = g;
        qsort(m->gpus, m->n_gpus, sizeof(*m->gpus), compare_gpus);
        return 0;
}

int manager_add_missing_gpu(struct manager *m, const char *address, const struct pci_identity *id, const char *model,
                            struct gpu **ret) {
        struct gpu *g;
        int r;

        r = gpu_new(m, address, &g);
        if (r < 0)
                return r;
        g->present = false;
        g->state = GPU_STATE_MISSING;
        if (id) {
                g->identity = *id;
                g->mode = gpu_mode_from_class(id->class_code);
        }
        g->model = strdup(model ?: "unknown (never seen by this agent)");
        if (!g->model || manager_insert_gpu(m, g) < 0) {
                gpu_free(g);
                return -ENOMEM;
        }
        (void) manager_emit_gpu_added(m, g);
        *ret = g;
        return 0;
}

static void manager_remove_gpu(struct manager *m, struct gpu *g);

int manager_forget_missing_gpu(struct manager *m, struct gpu *g) {
        char *owner = TAKE_PTR(g->owner);
        int r;

        r = manager_save_state(m);
        if (r < 0) {
                g->owner = owner;
                return r;
        }
        log_full(LOG_NOTICE, g->address, "Claim of missing GPU %s by VM %s released", g->address, owner);
        free(owner);
        manager_remove_gpu(m, g);
        return 0;
}

static void manager_remove_gpu(struct manager *m, struct gpu *g) {
        size_t i;

        for (i = 0; i < m->n_gpus; i++)
                if (m->gpus[i] == g)
                        break;
        if (i == m->n_gpus)
                return;
        log_full(LOG_NOTICE, g->address, "GPU %s (%s) is gone", g->address, g->model);
        (void) manager_emit_gpu_removed(m, g);
        memmove(m->gpus + i, m->gpus + i + 1, sizeof(*m->gpus) * (m->n_gpus - i - 1));
        m->n_gpus--;
        gpu_free(g);
}

/* A display-class function. A uevent names the class itself (PCI_CLASS, hex without 0x, as the kernel's
 * pci_uevent() writes it), which saves reading the sysfs attribute for every event of every other device. */
static bool udev_device_is_display(struct udev_device *d) {
        const char *class = udev_device_get_property_value(d, "PCI_CLASS");
        unsigned long long v;
        char *end;

        if (class && *class) {
                errno = 0;
                v = strtoull(class, &end, 16);
                if (errno == 0 && !*end && v <= 0xffffff)
                        return pci_class_is_display((uint32_t) v);
        }
        class = udev_device_get_sysattr_value(d, "class");
        return class && parse_unsigned(class, 0xffffff, &v) >= 0 && pci_class_is_display((uint32_t) v);
}

static bool action_changes_binding(const char *action) {
        return action && (strcmp(action, "bind") == 0 || strcmp(action, "unbind") == 0);
}

/* A bind or unbind of `address` (g: the GPU there, if any): only driver links changed, so the GPUs whose
 * group holds it re-read those and nothing else (gpu_refresh_drivers()); the device's own GPU first, so its
 * PropertiesChanged leaves before the group's other GPUs and the claimed-group check are looked at. A device
 * in no GPU's group (a NIC of its own group) concerns no GPU: nothing is read. False when the full path must
 * decide: a display function not seen yet, or a GPU whose group was never read. */
static bool manager_handle_binding(struct manager *m, struct udev_device *d, const char *name, struct gpu *g) {
        char address[PCI_ADDRESS_MAX];
        int group = -1, r;

        if (g)
                memcpy(address, g->address, sizeof(address)); /* canonical already */
        else if (pci_address_normalize(name, address) < 0)
                return false;
        if (g && !g->present)
                return false; /* a claimed card back on the bus: the full path */
        if (g) {
                if (g->iommu_group >= 0 && !g->group)
                        return false;
                r = gpu_refresh_drivers(g);
                if (r < 0)
                        log_warning("Failed to refresh GPU %s, ignoring: %s", g->address, strerror(-r));
                group = g->iommu_group;
        }
        for (size_t i = 0; i < m->n_gpus; i++) {
                struct gpu *peer = m->gpus[i];

                if (peer == g || !peer->present || !gpu_group_has_member(peer, address))
                        continue;
                r = gpu_refresh_drivers(peer);
                if (r < 0)
                        log_warning("Failed to refresh GPU %s, ignoring: %s", peer->address, strerror(-r));
                group = peer->iommu_group;
        }
        if (!g && group < 0) {
                for (size_t i = 0; i < m->n_gpus; i++)
                        if (m->gpus[i]->present && m->gpus[i]->iommu_group >= 0 && !m->gpus[i]->group)
                                return false;
                return !udev_device_is_display(d);
        }
        if (group >= 0)
                manager_rebind_claimed_group(m, group);
        return true;
}

/* Brings one PCI function's view up to date: a GPU is added or refreshed, and the GPUs sharing its IOMMU
 * group are refreshed because their state and viability depend on it. */
static void manager_handle_device(struct manager *m, struct udev_device *d, const char *action) {
        const char *address = udev_device_get_sysname(d);
        struct gpu *g = address ? manager_find_gpu(m, address) : NULL;
        bool removed = action && strcmp(action, "remove") == 0;
        int group = -1, r;

        if (!address)
                return;
        if (removed) {
                if (g && g->owner) {
                        /* A claimed GPU that disappears keeps its claim: it must not go to another VM when it
                         * comes back without a release. */
                        log_full(LOG_WARNING, g->address, "Claimed GPU %s (VM %s) disappeared from the bus",
                                 g->address, g->owner);
                        g->present = false;
                        g->rebind_failures = 0; /* when it is back, binding it back gets its attempts again */
                        (void) gpu_refresh(g);
                } else if (g) {
                        group = g->iommu_group;
                        manager_remove_gpu(m, g);
                } else {
                        /* Any member of a GPU's group (a companion, a NIC sharing it): the GPUs there read their
                         * group again, so that the member leaves the view gpu_refresh_drivers() works from. */
                        char canonical[PCI_ADDRESS_MAX];
                        bool known = pci_address_normalize(address, canonical) >= 0;

                        for (size_t i = 0; i < m->n_gpus && group < 0; i++)
                                if (strv_contains(m->gpus[i]->companions, address) ||
                                    (known && gpu_group_has_member(m->gpus[i], canonical)))
                                        group = m->gpus[i]->iommu_group;
                }
                if (group >= 0)
                        manager_refresh_group(m, group);
                return;
        }

        if (action_changes_binding(action) && manager_handle_binding(m, d, address, g))
                return;
        if (g && !g->present) {
                log_full(LOG_NOTICE, g->address, "Claimed GPU %s is back on the bus", g->address);
                g->present = true;
                r = gpu_refresh(g);
                if (r >= 0)
                        r = manager_check_identity(m, g);
                if (r < 0)
                        log_warning_errno(r, "Failed to refresh GPU %s, ignoring: %m", address);
        } else if (g) {
                r = gpu_refresh(g);
                if (r < 0)
                        log_warning("Failed to refresh GPU %s, ignoring: %s", address, strerror(-r));
        } else if (udev_device_is_display(d)) {
                r = manager_add_gpu(m, address);
                if (r < 0)
                        log_warning("Failed to add GPU %s, ignoring: %s", address, strerror(-r));
        }
        /* The group's other GPUs: their viability depends on this device's driver. The GPU itself was
         * refreshed above; a second read of the same sysfs doubled the cost of every bind/unbind uevent
         * (tests/bench signal-bench, callgrind). */
        if (pci_device_iommu_group(address, &group) >= 0) {
                manager_refresh_group_except(m, group, g);
                manager_rebind_claimed_group(m, group);
        }
}

void manager_rebind_claimed_group(struct manager *m, int group) {
        for (size_t i = 0; i < m->n_gpus; i++) {
                struct gpu *g = m->gpus[i];
                int r;

                if (g->iommu_group != group || !g->owner || !g->present)
                        continue;
                r = gpu_rebind_claimed(g);
                if (r < 0)
                        log_warning("Cannot bind the returned IOMMU group %d back to vfio-pci: %s", group, strerror(-r));
                return; /* one job covers the group */
        }
}

void manager_refresh_group(struct manager *m, int group) {
        manager_refresh_group_except(m, group, NULL);
}

void manager_refresh_group_except(struct manager *m, int group, struct gpu *done) {
        for (size_t i = 0; i < m->n_gpus; i++) {
                struct gpu *g = m->gpus[i];
                int r;

                if (g->iommu_group != group || g == done)
                        continue;
                r = gpu_refresh(g);
                if (r < 0)
                        log_warning("Failed to refresh GPU %s, ignoring: %s", g->address, strerror(-r));
        }
}

int manager_enumerate(struct manager *m) {
        struct udev_enumerate *e;
        struct udev_list_entry *item;
        _cleanup_strv_free_ char **seen = NULL;
        int r;

        e = udev_enumerate_new(m->udev);
        if (!e)
                return -ENOMEM;
        r = udev_enumerate_add_match_subsystem(e, "pci");
        if (r >= 0)
                r = udev_enumerate_scan_devices(e);
        if (r < 0) {
                udev_enumerate_unref(e);
                return r;
        }
        udev_list_entry_foreach(item, udev_enumerate_get_list_entry(e)) {
                struct udev_device *d = udev_device_new_from_syspath(m->udev, udev_list_entry_get_name(item));

                if (!d)
                        continue;
                if (udev_device_is_display(d))
                        (void) strv_extend(&seen, udev_device_get_sysname(d));
                manager_handle_device(m, d, NULL);
                udev_device_unref(d);
        }
        udev_enumerate_unref(e);

        /* GPUs that udev no longer lists are gone (a remove we did not see, e.g. before a restart). */
        for (size_t i = m->n_gpus; i-- > 0;) {
                struct gpu *g = m->gpus[i];

                if (strv_contains(seen, g->address) || !g->present)
                        continue;
                if (g->owner) {
                        g->present = false;
                        (void) gpu_refresh(g);
                } else
                        manager_remove_gpu(m, g);
        }
        manager_set_status(m);
        return 0;
}

/* Sent only when it changed: under systemd every notification is a datagram and a wakeup of PID 1, and most
 * uevents (a driver's unbind before its bind) leave the counts as they were. */
void manager_set_status(struct manager *m) {
        _cleanup_free_ char *status = NULL;
        size_t on_vfio = 0;

        for (size_t i = 0; i < m->n_gpus; i++)
                if (m->gpus[i]->state == GPU_STATE_VFIO || m->gpus[i]->state == GPU_STATE_CLAIMED)
                        on_vfio++;
        if (asprintf(&status, "STATUS=%zu GPUs, %zu on vfio-pci%s", m->n_gpus, on_vfio,
                     m->maintenance ? ", in maintenance" : "") < 0)
                return;
        if (m->status_sent && strcmp(m->status_sent, status) == 0)
                return;
        if (sd_notify(false, status) >= 0) {
                free(m->status_sent);
                m->status_sent = TAKE_PTR(status);
        }
}

static int manager_on_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct manager *m = userdata;
        struct udev_device *d;

        /* Drain everything queued: one wakeup may carry several events (unbind + bind). */
        while ((d = udev_monitor_receive_device(m->monitor))) {
                manager_handle_device(m, d, udev_device_get_action(d));
                udev_device_unref(d);
        }
        /* An added or reflashed GPU was named from pci.ids: do not keep the 2 MiB list for the next one. */
        pci_access_release_names(m->pacc);
        manager_set_status(m);
        return 0;
}

static int manager_on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;

        (void) sd_notify(false, "STOPPING=1");
        return sd_event_exit(m->event, 0);
}

/* systemd may pass several directories separated by ':'; ours is the first. */
static char *first_directory(const char *env, const char *fallback) {
        const char *dir = getenv(env);

        if (!dir || !*dir)
                dir = fallback;
        return strndup(dir, strcspn(dir, ":"));
}

/* Reads $CONFIGURATION_DIRECTORY/gpupassd.conf into `c` and resolves its admin group; logs what is wrong. */
static int manager_read_config(const char *dir, struct agent_config *c) {
        _cleanup_free_ char *path = NULL;
        int line = 0, r;

        if (asprintf(&path, "%s/%s", dir, AGENT_CONFIG_FILE) < 0)
                return -ENOMEM;
        r = agent_config_load(c, path, &line);
        if (r == -EINVAL) {
                log_error("%s:%d: invalid setting", path, line);
                return r;
        }
        if (r < 0) {
                log_error("Failed to read %s: %s", path, strerror(-r));
                return r;
        }
        r = agent_config_resolve(c);
        if (r < 0)
                log_notice("Admin group %s does not exist (%s): only root may change GPU state",
                                 c->admin_group, strerror(-r));
        return 0;
}

static int manager_load_config(struct manager *m) {
        _cleanup_free_ char *dir = first_directory("CONFIGURATION_DIRECTORY", AGENT_CONFIG_DEFAULT_DIR);

        if (!dir || asprintf(&m->passthrough_dir, "%s/passthrough.d", dir) < 0)
                return -ENOMEM;
        return manager_read_config(dir, &m->config);
}

/* SIGHUP (systemctl reload): rereads gpupassd.conf. A file that does not parse leaves the running
 * configuration in place, so a typo does not lock the admins out. passthrough.d is read at start-up only:
 * binding GPUs is not a side effect of a reload. */
static int manager_on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;
        _cleanup_free_ char *dir = first_directory("CONFIGURATION_DIRECTORY", AGENT_CONFIG_DEFAULT_DIR);
        struct agent_config fresh = {};
        int r;

        (void) sd_notify(false, "RELOADING=1");
        r = dir ? manager_read_config(dir, &fresh) : -ENOMEM;
        if (r < 0) {
                log_error("Reload failed, keeping AdminGroup=%s", m->config.admin_group);
                agent_config_done(&fresh);
        } else {
                agent_config_done(&m->config);
                m->config = fresh;
                log_info("Configuration reloaded: AdminGroup=%s", m->config.admin_group);
        }
        (void) sd_notify(false, "READY=1");
        manager_set_status(m);
        return 0;
}

int manager_startup(struct manager *m) {
        sigset_t mask;
        int r;

        r = manager_load_config(m);
        if (r < 0)
                return r;
        m->state_dir = first_directory("STATE_DIRECTORY", AGENT_STATE_DEFAULT_DIR);
        if (!m->state_dir)
                return -ENOMEM;
        if (mkdir(m->state_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", m->state_dir);
        r = manager_load_state(m);
        if (r < 0)
                return r;

        /* Event loop, watchdog and signals first, so that nothing below can miss a stop request. */
        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                return r;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        /* Blocked before any worker thread exists, so threads inherit the mask and signals reach the loop. */
        r = -pthread_sigmask(SIG_BLOCK, &mask, NULL);
        if (r < 0)
                return r;
        r = sd_event_add_signal(m->event, NULL, SIGTERM, manager_on_signal, m);
        if (r < 0)
                return r;
        r = sd_event_add_signal(m->event, NULL, SIGINT, manager_on_signal, m);
        if (r < 0)
                return r;
        r = sd_event_add_signal(m->event, NULL, SIGHUP, manager_on_reload, m);
        if (r < 0)
                return r;

        r = pci_access_open(&m->pacc);
        if (r < 0) {
                log_error("No PCI sysfs (/sys/bus/pci): %s", strerror(-r));
                return r;
        }

        /* The monitor is enabled before enumerating: a device that appears in between is seen twice
         * (harmless) rather than never. */
        m->udev = udev_new();
        if (!m->udev)
                return -ENOMEM;
        m->monitor = udev_monitor_new_from_netlink(m->udev, "udev");
        if (!m->monitor)
                return -ENOMEM;
        r = udev_monitor_filter_add_match_subsystem_devtype(m->monitor, "pci", NULL);
        if (r < 0)
                return r;
        r = udev_monitor_enable_receiving(m->monitor);
        if (r < 0)
                return r;
        r = sd_event_add_io(m->event, &m->monitor_source, udev_monitor_get_fd(m->monitor), EPOLLIN,
                            manager_on_uevent, m);
        if (r < 0)
                return r;

        m->iommu_enabled = sysfs_iommu_enabled();
        r = manager_enumerate(m);
        if (r < 0)
                return r;
        r = manager_apply_state(m);
        if (r < 0)
                return log_error_errno(r, "Failed to apply the saved state: %m");

        pci_access_release_names(m->pacc); /* the names are known now; see manager_on_uevent() */

        /* Objects before the name: a client that sees the name appear finds every GPU already there. */
        r = manager_bus_setup(m);
        if (r < 0)
                return r;
        m->bus_ready = true;
        manager_flush_identity_signals(m);

        (void) sd_notify(false, "READY=1");
        manager_set_status(m);
        return 0;
}

int manager_run(struct manager *m) {
        return sd_event_loop(m->event);
}
