/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "gpu.h"
#include "group-job.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "pci-access.h"
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

int manager_add_gpu(struct manager *m, const char *address) {
        _cleanup_(gpu_freep) struct gpu *owned = NULL;
        struct gpu *g;
        int r;

        r = gpu_new(m, address, &owned);
        if (r < 0)
                return r;
        r = gpu_refresh(owned);
        if (r < 0)
                return r;
        r = manager_insert_gpu(m, owned);
        if (r < 0)
                return r;
        g = TAKE_PTR(owned); /* the manager's now */

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
        struct gpu *g;

        FOREACH_GPU_IN_GROUP(g, m, group)
                g->job_running = running;
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
        _cleanup_(gpu_freep) struct gpu *g = NULL;
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
        if (!g->model)
                return -ENOMEM;
        r = manager_insert_gpu(m, g);
        if (r < 0)
                return r;
        (void) manager_emit_gpu_added(m, g);
        *ret = TAKE_PTR(g); /* the manager's now */
        return 0;
}

int manager_forget_missing_gpu(struct manager *m, struct gpu *g) {
        _cleanup_free_ char *owner = TAKE_PTR(g->owner);
        int r;

        r = manager_save_state(m);
        if (r < 0) {
                g->owner = TAKE_PTR(owner); /* not released after all */
                return r;
        }
        log_full(LOG_NOTICE, g->address, "Claim of missing GPU %s by VM %s released", g->address, owner);
        manager_remove_gpu(m, g);
        return 0;
}

void manager_remove_gpu(struct manager *m, struct gpu *g) {
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

void manager_rebind_claimed_group(struct manager *m, int group) {
        struct gpu *g;

        FOREACH_GPU_IN_GROUP(g, m, group) {
                int r;

                if (!g->owner || !g->present)
                        continue;
                r = gpu_rebind_claimed(g);
                if (r < 0)
                        log_warning_errno(r, "Cannot bind the returned IOMMU group %d back to vfio-pci: %m", group);
                return; /* one job covers the group */
        }
}

void manager_refresh_group(struct manager *m, int group) {
        manager_refresh_group_except(m, group, /* done= */ NULL);
}

void manager_refresh_group_except(struct manager *m, int group, struct gpu *done) {
        struct gpu *g;

        FOREACH_GPU_IN_GROUP(g, m, group) {
                int r;

                if (g == done)
                        continue;
                r = gpu_refresh(g);
                if (r < 0)
                        log_warning_errno(r, "Failed to refresh GPU %s, ignoring: %m", g->address);
        }
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
        if (streq_ptr(m->status_sent, status))
                return;
        if (sd_notify(/* unset_environment= */ false, status) >= 0) {
                free(m->status_sent);
                m->status_sent = TAKE_PTR(status);
        }
}

static int manager_on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;

        (void) sd_notify(/* unset_environment= */ false, "STOPPING=1");
        return sd_event_exit(m->event, /* code= */ 0);
}

int manager_startup(struct manager *m) {
        sigset_t mask;
        int r;

        r = manager_load_config(m);
        if (r < 0)
                return r;
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
        r = -pthread_sigmask(SIG_BLOCK, &mask, /* oldset= */ NULL);
        if (r < 0)
                return r;
        r = sd_event_add_signal(m->event, /* ret= */ NULL, SIGTERM, manager_on_signal, m);
        if (r < 0)
                return r;
        r = sd_event_add_signal(m->event, /* ret= */ NULL, SIGINT, manager_on_signal, m);
        if (r < 0)
                return r;
        r = sd_event_add_signal(m->event, /* ret= */ NULL, SIGHUP, manager_on_reload, m);
        if (r < 0)
                return r;

        r = pci_access_open(&m->pacc);
        if (r < 0)
                return log_error_errno(r, "No PCI sysfs (/sys/bus/pci): %m");

        r = manager_udev_setup(m);
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

        (void) sd_notify(/* unset_environment= */ false, "READY=1");
        manager_set_status(m);
        return 0;
}

int manager_run(struct manager *m) {
        return sd_event_loop(m->event);
}
