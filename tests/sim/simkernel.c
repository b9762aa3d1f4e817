/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel emulator: what Linux 6.1 does when a process writes to driver_override, a driver's bind or
 * unbind, drivers_probe, a device's remove or reset (drivers/pci/pci-sysfs.c, pci-driver.c,
 * drivers/base/bus.c, dd.c, driver.c), including the return values a caller must handle: ENODEV for a
 * device that is not bound to that driver, EBUSY for binding a bound device, EINVAL for an override too
 * long, and success from drivers_probe even when no driver took the device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "simhost.h"

#define PAGE_SIZE 4096

static char *read_file(const char *path) {
        char *contents = NULL;

        if (!g_file_get_contents(path, &contents, NULL, NULL))
                return NULL;
        return contents;
}

char *sim_read_driver(struct simhost *h, struct simdev *d) {
        char *link = sim_path(h, "%s/driver", d->devpath), *target = g_file_read_link(link, NULL), *name = NULL;

        if (target)
                name = g_path_get_basename(target);
        g_free(link);
        g_free(target);
        return name;
}

char *sim_read_override(struct simhost *h, struct simdev *d) {
        char *path = sim_path(h, "%s/driver_override", d->devpath), *v = read_file(path);

        g_free(path);
        if (!v)
                return NULL;
        g_strchomp(v);
        if (strcmp(v, "(null)") == 0) {
                g_free(v);
                return NULL;
        }
        return v;
}

static bool driver_loaded(struct simhost *h, const char *driver) {
        char *dir = sim_path(h, "/sys/bus/pci/drivers/%s", driver);
        bool r = g_file_test(dir, G_FILE_TEST_IS_DIR);

        g_free(dir);
        return r;
}

void sim_bind(struct simhost *h, struct simdev *d, const char *driver, bool emit) {
        char *link = sim_path(h, "%s/driver", d->devpath), *dir = g_strdup_printf("bus/pci/drivers/%s", driver);
        char *back = sim_path(h, "/sys/%s/%s", dir, d->address);
        char *up = g_strdup(""), *target;
        const char *rel = d->devpath + strlen("/sys/");

        for (const char *p = rel; *p; p++)
                if (*p == '/') {
                        char *t = g_strconcat(up, "../", NULL);
                        g_free(up);
                        up = t;
                }
        target = g_strconcat(up, "../", dir, NULL);
        unlink(link);
        if (symlink(target, link) < 0)
                g_error("cannot bind %s: %m", d->address);
        g_free(target);
        target = g_strconcat("../../../../", rel, NULL);
        unlink(back);
        if (symlink(target, back) < 0)
                g_error("cannot link %s: %m", back);
        sim_write_uevent_file(h, d, driver);
        if (emit)
                sim_uevent(h, d, "bind");
        g_free(target);
        g_free(up);
        g_free(link);
        g_free(dir);
        g_free(back);
}

void sim_unbind(struct simhost *h, struct simdev *d, bool emit) {
        char *driver = sim_read_driver(h, d), *link, *back;

        if (!driver)
                return;
        link = sim_path(h, "%s/driver", d->devpath);
        back = sim_path(h, "/sys/bus/pci/drivers/%s/%s", driver, d->address);
        unlink(link);
        unlink(back);
        sim_write_uevent_file(h, d, NULL);
        if (emit)
                sim_uevent(h, d, "unbind");
        g_free(link);
        g_free(back);
        g_free(driver);
}

/* vfio-pci and pci-stub have no ID table: they match only through driver_override (or new_id). */
static bool driver_matches(struct simdev *d, const char *override, const char *driver) {
        if (override)
                return strcmp(override, driver) == 0;
        return d->native_driver && strcmp(d->native_driver, driver) == 0 && strcmp(driver, "vfio-pci") != 0 &&
               strcmp(driver, "pci-stub") != 0;
}

void sim_probe(struct simhost *h, struct simdev *d) {
        char *bound = sim_read_driver(h, d), *override = sim_read_override(h, d);
        const char *candidate = override ?: d->native_driver;

        /* A driver whose probe() fails leaves the device unbound; drivers_probe still reports success. */
        if (!bound && candidate && driver_loaded(h, candidate) && driver_matches(d, override, candidate) &&
            !(d->failing_driver && strcmp(d->failing_driver, candidate) == 0))
                sim_bind(h, d, candidate, true);
        g_free(bound);
        g_free(override);
}

static void remove_tree(const char *path) {
        GDir *dir = g_dir_open(path, 0, NULL);
        const char *name;

        if (dir) {
                while ((name = g_dir_read_name(dir))) {
                        char *child = g_build_filename(path, name, NULL);

                        if (g_file_test(child, G_FILE_TEST_IS_SYMLINK) || !g_file_test(child, G_FILE_TEST_IS_DIR))
                                unlink(child);
                        else
                                remove_tree(child);
                        g_free(child);
                }
                g_dir_close(dir);
        }
        rmdir(path);
}

static guint device_index(struct simhost *h, struct simdev *d) {
        guint i;

        if (!g_ptr_array_find(h->devices, d, &i))
                g_error("%s is not on the bus", d->address);
        return i;
}

/* The functions right below bridge `d`, in bus order. */
static GPtrArray *children_of(struct simhost *h, struct simdev *d) {
        GPtrArray *children = g_ptr_array_new();

        for (guint i = 0; i < h->devices->len; i++) {
                struct simdev *c = g_ptr_array_index(h->devices, i);

                if (c->parent && strcmp(c->parent, d->address) == 0)
                        g_ptr_array_add(children, c);
        }
        return children;
}

/* pci_stop_bus_device(): the drivers below a bridge let go first, deepest first, then the bridge's own. */
static void stop_device(struct simhost *h, struct simdev *d) {
        g_autoptr(GPtrArray) children = children_of(h, d);

        for (guint i = children->len; i > 0; i--)
                stop_device(h, g_ptr_array_index(children, i - 1));
        sim_unbind(h, d, true);
}

/* pci_remove_bus_device(): the functions below a bridge go first; then the device leaves the bus and its
 * IOMMU group (the group itself goes with its last device), the remove event is sent while its uevent file
 * can still be read (umockdev builds the event from it), and its directory goes. */
static void remove_device(struct simhost *h, struct simdev *d, bool unplugged) {
        g_autoptr(GPtrArray) children = children_of(h, d);
        g_autofree char *bus_link = sim_path(h, "/sys/bus/pci/devices/%s", d->address);
        g_autofree char *dir = sim_path(h, "%s", d->devpath);

        for (guint i = 0; i < children->len; i++)
                remove_device(h, g_ptr_array_index(children, i), unplugged);
        unlink(bus_link);
        if (h->iommu && d->iommu_group >= 0) {
                g_autofree char *group_link = sim_path(h, "/sys/kernel/iommu_groups/%d/devices/%s", d->iommu_group,
                                                       d->address);
                g_autofree char *group_devices = sim_path(h, "/sys/kernel/iommu_groups/%d/devices", d->iommu_group);
                g_autofree char *group = sim_path(h, "/sys/kernel/iommu_groups/%d", d->iommu_group);

                unlink(group_link);
                if (rmdir(group_devices) == 0)
                        remove_tree(group);
        }
        sim_uevent(h, d, "remove");
        remove_tree(dir);
        /* A device removed through sysfs is still in its slot: a rescan finds it again. One unplugged
         * (ctl remove) is gone. */
        if (!unplugged)
                g_ptr_array_add(h->removed, g_ptr_array_steal_index(h->devices, device_index(h, d)));
        else
                g_ptr_array_remove(h->devices, d); /* frees d */
}

void sim_remove(struct simhost *h, struct simdev *d, bool unplugged) {
        stop_device(h, d);
        remove_device(h, d, unplugged);
}

/* pci_rescan_bus(): the functions removed through sysfs come back, bridges before what is behind them, each
 * with its add event and then the bus's probe. */
static void rescan(struct simhost *h) {
        bool progress = true;

        while (progress) {
                progress = false;
                for (guint i = 0; i < h->removed->len; i++) {
                        struct simdev *d = g_ptr_array_index(h->removed, i);

                        if (d->parent && !sim_find(h, d->parent))
                                continue;
                        g_ptr_array_add(h->devices, g_ptr_array_steal_index(h->removed, i));
                        if (sim_create_device(h, d, NULL) < 0)
                                g_error("cannot re-create %s", d->address);
                        sim_update_bridges(h);
                        sim_uevent(h, d, "add");
                        sim_probe(h, d);
                        progress = true;
                        break;
                }
        }
}

/* driver_register() -> driver_attach(): a driver that comes takes every unbound device it matches. */
static void attach_driver(struct simhost *h, const char *driver) {
        for (guint i = 0; i < h->devices->len; i++) {
                struct simdev *d = g_ptr_array_index(h->devices, i);
                g_autofree char *bound = sim_read_driver(h, d), *override = sim_read_override(h, d);

                if (!bound && driver_matches(d, override, driver) &&
                    !(d->failing_driver && strcmp(d->failing_driver, driver) == 0))
                        sim_bind(h, d, driver, true);
        }
}

/* The device a per-device attribute path ("/sys/devices/.../ADDR/attr") belongs to. */
static struct simdev *device_of(struct simhost *h, const char *path, const char *attribute) {
        for (guint i = 0; i < h->devices->len; i++) {
                struct simdev *d = g_ptr_array_index(h->devices, i);
                size_t n = strlen(d->devpath);

                if (strncmp(path, d->devpath, n) == 0 && path[n] == '/' && strcmp(path + n + 1, attribute) == 0)
                        return d;
        }
        return NULL;
}

/* What a store function compares a name with: sysfs_streq() ignores one trailing newline, nothing else;
 * the kernel's copy of the buffer ends at the first NUL. */
static char *sysfs_arg(const char *data, size_t len) {
        char *s = g_strndup(data, len);
        size_t n = strlen(s);

        if (n > 0 && s[n - 1] == '\n')
                s[n - 1] = '\0';
        return s;
}

/* kstrtoul(buf, 0, ...) as the store functions call it: a whole number (one trailing newline allowed). */
static int sysfs_ulong(const char *arg, unsigned long *ret) {
        char *end;

        if (!g_ascii_isdigit(arg[0]) && arg[0] != '+')
                return -EINVAL;
        errno = 0;
        *ret = strtoul(arg, &end, 0);
        return errno || *end ? -EINVAL : 0;
}

static int64_t store_driver_override(struct simhost *h, const char *path, const char *data, size_t len) {
        g_autofree char *file = NULL, *value = NULL;
        struct simdev *d = device_of(h, path, "driver_override");
        char *nl;

        if (!d)
                return -ENODEV;
        /* driver_set_override(): one character less than a page, so that reading it back ("%s\n") fits. */
        if (len >= PAGE_SIZE - 1)
                return -EINVAL;
        /* The value ends at the first NUL or newline; empty clears it. */
        value = g_strndup(data, len);
        nl = strchr(value, '\n');
        if (nl)
                *nl = '\0';
        file = sim_path(h, "%s/driver_override", d->devpath);
        if (*value) {
                g_autofree char *line = g_strconcat(value, "\n", NULL);

                (void) g_file_set_contents(file, line, -1, NULL);
        } else
                (void) g_file_set_contents(file, "(null)\n", -1, NULL);
        /* The override is only read by the next probe: nothing rebinds now. */
        return (int64_t) len;
}

/* A driver's bind/unbind/new_id/remove_id (drivers/base/bus.c, drivers/pci/pci-driver.c). */
static int64_t store_driver_file(struct simhost *h, const char *path, const char *base, const char *arg,
                                 size_t len) {
        g_autofree char *driver_dir = g_path_get_dirname(path);
        g_autofree char *driver = g_path_get_basename(driver_dir);
        g_autofree char *bound = NULL, *override = NULL;
        unsigned vendor, device;
        struct simdev *d;

        if (strcmp(base, "new_id") == 0 || strcmp(base, "remove_id") == 0) {
                /* "VVVV DDDD [...]" as sscanf("%x %x ...") reads it; the IDs are accepted and have no effect:
                 * gpupass never uses dynamic IDs. */
                if (sscanf(arg, "%x %x", &vendor, &device) < 2)
                        return -EINVAL;
                return (int64_t) len;
        }
        d = sim_find(h, arg);
        if (!d)
                return -ENODEV;
        bound = sim_read_driver(h, d);
        if (strcmp(base, "unbind") == 0) {
                if (!bound || strcmp(bound, driver) != 0)
                        return -ENODEV;
                if (h->unbind_delay_ms)
                        g_usleep(h->unbind_delay_ms * 1000UL); /* a GPU driver's remove() is slow */
                sim_unbind(h, d, true);
                return (int64_t) len;
        }
        if (strcmp(base, "bind") == 0) {
                /* bind_store(): the driver must match first (ENODEV), then device_driver_attach() finds the
                 * device taken (EBUSY) or runs the probe. */
                override = sim_read_override(h, d);
                if (!driver_matches(d, override, driver))
                        return -ENODEV;
                if (bound)
                        return -EBUSY;
                if (d->failing_driver && strcmp(d->failing_driver, driver) == 0)
                        return -ENXIO; /* the driver's probe() error, as bind reports it */
                sim_bind(h, d, driver, true);
                return (int64_t) len;
        }
        return -EINVAL;
}

/* load_module() -> do_init_module(): the module's init registers its PCI driver, which takes every device it
 * matches (attach_driver), and /sys/module/NAME appears with initstate "live". EEXIST when it is loaded. */
static int64_t load_module(struct simhost *h, const char *data, size_t len) {
        g_autofree char *path = g_strndup(data, len), *file = sim_path(h, "%s", path), *contents = NULL;
        g_autofree char *name = NULL, *module_dir = NULL, *initstate = NULL;
        const char *driver;
        char *end;

        if (!g_file_get_contents(file, &contents, NULL, NULL))
                return -ENOENT;
        driver = strstr(contents, "driver=");
        if (!driver)
                return -ENOEXEC; /* not a module: the kernel's "invalid module format" */
        driver += strlen("driver=");
        end = strchr(driver, '\n');
        if (end)
                *end = '\0';
        name = sim_module_name(driver);
        module_dir = sim_path(h, "/sys/module/%s", name);
        if (g_file_test(module_dir, G_FILE_TEST_IS_DIR))
                return -EEXIST;
        g_mkdir_with_parents(module_dir, 0755);
        initstate = g_build_filename(module_dir, "initstate", NULL);
        if (!g_file_set_contents(initstate, "live\n", -1, NULL))
                return -EIO;
        sim_load_driver(h, driver);
        attach_driver(h, driver);
        return 0;
}

int64_t sim_kernel_write(struct simhost *h, const char *path, const char *data, size_t len) {
        const char *base;
        g_autofree char *arg = NULL;
        unsigned long value;
        struct simdev *d;

        if (strcmp(path, "finit_module") == 0)
                return load_module(h, data, len);
        base = strrchr(path, '/') + 1;

        /* kernfs hands a store function at most a page; the rest of the write is not consumed. */
        if (len > PAGE_SIZE)
                len = PAGE_SIZE;
        arg = sysfs_arg(data, len);
        if (strcmp(base, "driver_override") == 0)
                return store_driver_override(h, path, data, len);
        if (strcmp(path, "/sys/bus/pci/drivers_probe") == 0) {
                /* drivers_probe_store(): ENODEV for no such device; success whether a driver took it or not. */
                d = sim_find(h, arg);
                if (!d)
                        return -ENODEV;
                sim_probe(h, d);
                return (int64_t) len;
        }
        if (strcmp(path, "/sys/bus/pci/rescan") == 0) {
                if (sysfs_ulong(arg, &value) < 0)
                        return -EINVAL;
                if (value)
                        rescan(h);
                return (int64_t) len;
        }
        if (strcmp(base, "remove") == 0 && (d = device_of(h, path, "remove"))) {
                if (sysfs_ulong(arg, &value) < 0)
                        return -EINVAL;
                if (value)
                        sim_remove(h, d, false);
                return (int64_t) len;
        }
        if (strcmp(base, "reset") == 0 && (d = device_of(h, path, "reset"))) {
                if (sysfs_ulong(arg, &value) < 0 || value != 1)
                        return -EINVAL;
                if (h->reset_delay_ms)
                        g_usleep(h->reset_delay_ms * 1000UL); /* a GPU's reset can take a second or more */
                if (d->reset_errno)
                        return -d->reset_errno;
                return (int64_t) len;
        }
        if (g_str_has_prefix(path, "/sys/bus/pci/drivers/"))
                return store_driver_file(h, path, base, arg, len);
        /* A control file this emulator does not know (a device's own rescan, ...): say so loudly. */
        fprintf(stderr, "gpupass-simhost: write to %s is not emulated\n", path);
        return -EINVAL;
}

char *sim_control(struct simhost *h, const char *command) {
        g_auto(GStrv) words = g_strsplit(command, " ", -1);
        struct simdev *d;

        if (!words[0])
                return g_strdup("ERR empty command");
        if (strcmp(words[0], "remove") == 0 && words[1]) {
                d = sim_find(h, words[1]);
                if (!d)
                        return g_strdup_printf("ERR no device %s", words[1]);
                sim_remove(h, d, true);
                return g_strdup("OK");
        }
        if (strcmp(words[0], "add") == 0 && words[1]) {
                g_autofree char *driver = NULL, *error = NULL;
                int r;

                unsigned domain, bus, slot, function;
                char end;

                if (sscanf(words[1], "%4x:%2x:%2x.%1x%c", &domain, &bus, &slot, &function, &end) != 4 ||
                    strlen(words[1]) != 12)
                        return g_strdup_printf("ERR %s is not a PCI address (DDDD:BB:SS.F)", words[1]);
                if (sim_find(h, words[1]))
                        return g_strdup_printf("ERR %s exists", words[1]);
                /* A new device in the slot of one removed through sysfs: the old one will not come back. */
                for (guint i = 0; i < h->removed->len; i++)
                        if (strcmp(((struct simdev *) g_ptr_array_index(h->removed, i))->address, words[1]) == 0)
                                g_ptr_array_remove_index(h->removed, i--);
                d = g_new0(struct simdev, 1);
                g_strlcpy(d->address, words[1], sizeof(d->address));
                d->iommu_group = -1;
                d->numa_node = -1;
                d->pcie = true;
                d->reset = true;
                for (char **w = words + 2; *w; w++) {
                        char *eq = strchr(*w, '=');

                        if (!eq) {
                                simdev_free(d);
                                return g_strdup_printf("ERR expected key=value, got %s", *w);
                        }
                        *eq = '\0';
                        if (strcmp(*w, "driver") == 0) {
                                g_free(driver);
                                driver = g_strdup(eq + 1);
                        }
                        r = simdev_parse(d, d->address, *w, eq + 1, &error);
                        if (r < 0) {
                                simdev_free(d);
                                return g_strdup_printf("ERR %s", error);
                        }
                }
                if (!d->native_driver && driver && *driver)
                        d->native_driver = g_strdup(driver);
                if (d->parent && !sim_find(h, d->parent)) {
                        g_autofree char *reply = g_strdup_printf("ERR no parent bridge %s", d->parent);

                        simdev_free(d);
                        return g_steal_pointer(&reply);
                }
                g_ptr_array_add(h->devices, d);
                if (sim_create_device(h, d, NULL) < 0)
                        g_error("cannot create %s", d->address);
                sim_update_bridges(h);
                /* device_add(): the add event, then the bus probes the new device. */
                sim_uevent(h, d, "add");
                sim_probe(h, d);
                return g_strdup("OK");
        }
        if (strcmp(words[0], "uevent") == 0 && words[1] && words[2]) {
                d = sim_find(h, words[1]);
                if (!d)
                        return g_strdup_printf("ERR no device %s", words[1]);
                sim_uevent(h, d, words[2]);
                return g_strdup("OK");
        }
        if (strcmp(words[0], "fail-probe") == 0 && words[1] && words[2]) {
                d = sim_find(h, words[1]);
                if (!d)
                        return g_strdup_printf("ERR no device %s", words[1]);
                g_free(d->failing_driver);
                d->failing_driver = strcmp(words[2], "-") == 0 ? NULL : g_strdup(words[2]);
                return g_strdup("OK");
        }
        if (strcmp(words[0], "fail-reset") == 0 && words[1] && words[2]) {
                d = sim_find(h, words[1]);
                if (!d)
                        return g_strdup_printf("ERR no device %s", words[1]);
                d->reset_errno = strcmp(words[2], "-") == 0 ? 0 : (int) strtol(words[2], NULL, 10);
                if (d->reset_errno <= 0 && strcmp(words[2], "-") != 0)
                        return g_strdup_printf("ERR expected a positive errno or -, got %s", words[2]);
                return g_strdup("OK");
        }
        if (strcmp(words[0], "unbind-delay") == 0 && words[1]) {
                h->unbind_delay_ms = (unsigned) strtoul(words[1], NULL, 10);
                return g_strdup("OK");
        }
        if (strcmp(words[0], "reset-delay") == 0 && words[1]) {
                h->reset_delay_ms = (unsigned) strtoul(words[1], NULL, 10);
                return g_strdup("OK");
        }
        if (strcmp(words[0], "driver-load") == 0 && words[1]) {
                sim_load_driver(h, words[1]);
                attach_driver(h, words[1]);
                return g_strdup("OK");
        }
        if (strcmp(words[0], "driver-unload") == 0 && words[1]) {
                char *dir = sim_path(h, "/sys/bus/pci/drivers/%s", words[1]);

                for (guint i = 0; i < h->devices->len; i++) {
                        g_autofree char *bound = NULL;

                        d = g_ptr_array_index(h->devices, i);
                        bound = sim_read_driver(h, d);
                        if (bound && strcmp(bound, words[1]) == 0)
                                sim_unbind(h, d, true);
                }
                remove_tree(dir);
                g_free(dir);
                {
                        /* rmmod: the module's directory goes with its driver. */
                        g_autofree char *name = sim_module_name(words[1]);
                        g_autofree char *module_dir = sim_path(h, "/sys/module/%s", name);

                        remove_tree(module_dir);
                }
                return g_strdup("OK");
        }
        return g_strdup_printf("ERR unknown command: %s", command);
}
