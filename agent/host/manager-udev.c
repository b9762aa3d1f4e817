/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manager's udev side: the monitor, the uevents it delivers (a GPU added, removed, bound or unbound, or a
 * member of its IOMMU group doing the same) and the enumeration at start-up and Rescan.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "gpu.h"
#include "iommu-group.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "strv.h"

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
        return streq_ptr(action, "bind") || streq_ptr(action, "unbind");
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
                        log_warning_errno(r, "Failed to refresh GPU %s, ignoring: %m", g->address);
                group = g->iommu_group;
        }
        for (size_t i = 0; i < m->n_gpus; i++) {
                struct gpu *peer = m->gpus[i];

                if (peer == g || !peer->present || !gpu_group_has_member(peer, address))
                        continue;
                r = gpu_refresh_drivers(peer);
                if (r < 0)
                        log_warning_errno(r, "Failed to refresh GPU %s, ignoring: %m", peer->address);
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
        bool removed = streq_ptr(action, "remove");
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
                        log_warning_errno(r, "Failed to refresh GPU %s, ignoring: %m", address);
        } else if (udev_device_is_display(d)) {
                r = manager_add_gpu(m, address);
                if (r < 0)
                        log_warning_errno(r, "Failed to add GPU %s, ignoring: %m", address);
        }
        /* The group's other GPUs: their viability depends on this device's driver. The GPU itself was
         * refreshed above; a second read of the same sysfs doubled the cost of every bind/unbind uevent
         * (tests/bench signal-bench, callgrind). */
        if (pci_device_iommu_group(address, &group) >= 0) {
                manager_refresh_group_except(m, group, g);
                manager_rebind_claimed_group(m, group);
        }
}

int manager_enumerate(struct manager *m) {
        _cleanup_(udev_enumerate_unrefp) struct udev_enumerate *e = NULL;
        struct udev_list_entry *item;
        _cleanup_strv_free_ char **seen = NULL;
        int r;

        e = udev_enumerate_new(m->udev);
        if (!e)
                return -ENOMEM;
        r = udev_enumerate_add_match_subsystem(e, "pci");
        if (r >= 0)
                r = udev_enumerate_scan_devices(e);
        if (r < 0)
                return r;
        udev_list_entry_foreach(item, udev_enumerate_get_list_entry(e)) {
                _cleanup_(udev_device_unrefp) struct udev_device *d =
                        udev_device_new_from_syspath(m->udev, udev_list_entry_get_name(item));

                if (!d)
                        continue;
                if (udev_device_is_display(d))
                        (void) strv_extend(&seen, udev_device_get_sysname(d));
                manager_handle_device(m, d, /* action= */ NULL);
        }
        e = udev_enumerate_unref(e);

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

static int manager_on_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct manager *m = userdata;

        /* Drain everything queued: one wakeup may carry several events (unbind + bind). */
        for (;;) {
                _cleanup_(udev_device_unrefp) struct udev_device *d = udev_monitor_receive_device(m->monitor);

                if (!d)
                        break;
                manager_handle_device(m, d, udev_device_get_action(d));
        }
        /* An added or reflashed GPU was named from pci.ids: do not keep the 2 MiB list for the next one. */
        pci_access_release_names(m->pacc);
        manager_set_status(m);
        return 0;
}

int manager_udev_setup(struct manager *m) {
        int r;

        /* The monitor is enabled before enumerating: a device that appears in between is seen twice
         * (harmless) rather than never. */
        m->udev = udev_new();
        if (!m->udev)
                return -ENOMEM;
        m->monitor = udev_monitor_new_from_netlink(m->udev, "udev");
        if (!m->monitor)
                return -ENOMEM;
        r = udev_monitor_filter_add_match_subsystem_devtype(m->monitor, "pci", /* devtype= */ NULL);
        if (r < 0)
                return r;
        r = udev_monitor_enable_receiving(m->monitor);
        if (r < 0)
                return r;
        r = sd_event_add_io(m->event, &m->monitor_source, udev_monitor_get_fd(m->monitor), EPOLLIN,
                            manager_on_uevent, m);
        if (r < 0)
                return r;
        return 0;
}
