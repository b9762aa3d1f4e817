/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "bind.h"
#include "kmod-util.h"
#include "macro.h"
#include "sysfs-pci.h"

#define VFIO_PCI "vfio-pci"

int bind_plan_new(int group, struct bind_plan **ret) {
        struct bind_plan *p;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->group = group;
        *ret = p;
        return 0;
}

struct bind_plan *bind_plan_free(struct bind_plan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_members; i++) {
                free(p->members[i].original_driver);
                free(p->members[i].original_override);
        }
        free(p->members);
        free(p->error_message);
        free(p);
        return NULL;
}

int bind_plan_add(struct bind_plan *p, const char *address) {
        struct bind_member *t;

        t = realloc(p->members, sizeof(*t) * (p->n_members + 1));
        if (!t)
                return -ENOMEM;
        p->members = t;
        t[p->n_members] = (struct bind_member) {};
        snprintf(t[p->n_members].address, sizeof(t[p->n_members].address), "%s", address);
        p->n_members++;
        return 0;
}

const char *bind_plan_error(struct bind_plan *p, int error) {
        if (!p->error_message) {
                errno = abs(error);
                if (asprintf(&p->error_message, "%m") < 0)
                        p->error_message = NULL;
        }
        return p->error_message ?: "out of memory";
}

/* Records "0000:3b:00.0: unbinding from nouveau failed: Device or resource busy". The first error is kept:
 * it is the cause, later ones are consequences of the rollback. `driver` completes the step when not NULL. */
static void plan_fail(struct bind_plan *p, int error, const char *address, const char *step, const char *driver) {
        if (p->error_message)
                return;
        errno = abs(error);
        if (asprintf(&p->error_message, "%s: %s%s%s failed: %m", address, step, driver ? " " : "", driver ?: "") < 0)
                p->error_message = NULL;
}

int vfio_pci_ensure_loaded(char **ret_message) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        _cleanup_free_ char *why = NULL;
        struct kmod_ctx *ctx;
        struct kmod_module *mod = NULL;
        int r;

        /* The usual case (modules-load.d loaded it at boot): libkmod is never even opened. */
        if (sysfs_pci_driver_loaded(VFIO_PCI))
                return 0;

        /* One load at a time: two groups prepared at once would otherwise both insert the module. */
        pthread_mutex_lock(&lock);
        if (sysfs_pci_driver_loaded(VFIO_PCI)) {
                pthread_mutex_unlock(&lock);
                return 0;
        }
        r = dlopen_libkmod(&why);
        if (r < 0) {
                pthread_mutex_unlock(&lock);
                if (ret_message &&
                    asprintf(ret_message, "The vfio-pci driver is not loaded and module vfio-pci cannot be loaded "
                             "without libkmod: %s", why ?: LIBKMOD_SONAME " cannot be loaded") < 0)
                        *ret_message = NULL;
                return r;
        }

        ctx = sym_kmod_new(/* dirname= */ NULL, /* config_paths= */ NULL);
        if (!ctx) {
                pthread_mutex_unlock(&lock);
                return -ENOMEM;
        }
        r = sym_kmod_module_new_from_name(ctx, "vfio-pci", &mod);
        if (r >= 0)
                r = sym_kmod_module_probe_insert_module(mod, /* flags= */ 0, /* extra_options= */ NULL,
                                                        /* run_install= */ NULL, /* data= */ NULL,
                                                        /* print_action= */ NULL);
        if (r > 0)
                r = -EPERM; /* blacklisted or a failing install command */
        sym_kmod_module_unref(mod);
        sym_kmod_unref(ctx);
        if (r >= 0 && !sysfs_pci_driver_loaded(VFIO_PCI))
                r = -ENOENT;
        pthread_mutex_unlock(&lock);
        if (r < 0 && ret_message) {
                errno = -r;
                if (asprintf(ret_message, "The vfio-pci driver is not loaded and loading module vfio-pci failed: %m") < 0)
                        *ret_message = NULL;
        }
        return r;
}

/* Puts one member back where it was. Errors are ignored on purpose: this runs after a failure, and
 * every remaining step still has to be tried. */
static void member_restore(struct bind_member *m) {
        _cleanup_free_ char *driver = NULL;

        if (m->original_override)
                (void) sysfs_pci_write_override(m->address, m->original_override);
        else
                (void) sysfs_pci_clear_override(m->address);

        if (sysfs_pci_read_driver(m->address, &driver) >= 0 && driver &&
            (!m->original_driver || strcmp(driver, m->original_driver) != 0))
                (void) sysfs_pci_unbind(m->address, driver);
        if (m->original_driver)
                (void) sysfs_pci_probe(m->address);
        m->touched = false;
}

static int member_to_vfio(struct bind_plan *p, struct bind_member *m) {
        _cleanup_free_ char *driver = NULL;
        int r;

        r = sysfs_pci_read_driver(m->address, &m->original_driver);
        if (r < 0) {
                plan_fail(p, r, m->address, "reading the driver link", /* driver= */ NULL);
                return r;
        }
        r = sysfs_pci_read_override(m->address, &m->original_override);
        if (r < 0) {
                plan_fail(p, r, m->address, "reading driver_override", /* driver= */ NULL);
                return r;
        }
        if (streq_ptr(m->original_driver, VFIO_PCI) && streq_ptr(m->original_override, VFIO_PCI))
                return 0; /* already there, and it stays there across a re-probe */

        m->touched = true;
        r = sysfs_pci_write_override(m->address, VFIO_PCI);
        if (r < 0) {
                plan_fail(p, r, m->address, "writing vfio-pci to driver_override", /* driver= */ NULL);
                return r;
        }
        if (streq_ptr(m->original_driver, VFIO_PCI))
                return 0;
        if (m->original_driver) {
                r = sysfs_pci_unbind(m->address, m->original_driver);
                if (r < 0) {
                        plan_fail(p, r, m->address, "unbinding from", m->original_driver);
                        return r;
                }
        }
        r = sysfs_pci_probe(m->address);
        if (r < 0) {
                plan_fail(p, r, m->address, "drivers_probe", /* driver= */ NULL);
                return r;
        }
        r = sysfs_pci_read_driver(m->address, &driver);
        if (r < 0) {
                plan_fail(p, r, m->address, "reading the driver link", /* driver= */ NULL);
                return r;
        }
        if (!streq_ptr(driver, VFIO_PCI)) {
                if (asprintf(&p->error_message, "%s did not bind to vfio-pci after drivers_probe (driver now: %s)",
                             m->address, driver ?: "none") < 0)
                        p->error_message = NULL;
                return -ENXIO;
        }
        return 0;
}

int bind_plan_to_vfio(struct bind_plan *p) {
        int r;

        r = vfio_pci_ensure_loaded(&p->error_message);
        if (r < 0)
                return r;

        for (size_t i = 0; i < p->n_members; i++) {
                r = member_to_vfio(p, &p->members[i]);
                if (r < 0) {
                        for (size_t j = i + 1; j-- > 0;)
                                if (p->members[j].touched)
                                        member_restore(&p->members[j]);
                        return r;
                }
        }
        return 0;
}

int bind_plan_to_host(struct bind_plan *p) {
        int first_error = 0;

        for (size_t i = 0; i < p->n_members; i++) {
                struct bind_member *m = &p->members[i];
                _cleanup_free_ char *driver = NULL;
                int r;

                /* Clear the override first: with it still set, the probe would bind vfio-pci again. */
                r = sysfs_pci_clear_override(m->address);
                if (r < 0) {
                        plan_fail(p, r, m->address, "clearing driver_override", /* driver= */ NULL);
                        first_error = first_error ?: r;
                        continue;
                }
                r = sysfs_pci_read_driver(m->address, &driver);
                if (r >= 0 && streq_ptr(driver, VFIO_PCI)) {
                        r = sysfs_pci_unbind(m->address, VFIO_PCI);
                        if (r < 0) {
                                plan_fail(p, r, m->address, "unbinding from", VFIO_PCI);
                                first_error = first_error ?: r;
                                continue;
                        }
                }
                r = sysfs_pci_probe(m->address);
                if (r < 0) {
                        plan_fail(p, r, m->address, "drivers_probe", /* driver= */ NULL);
                        first_error = first_error ?: r;
                }
        }
        return first_error;
}
