/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sysfs tree of a simulated PCI host, laid out as Linux 6.1 lays it out: devices under
 * /sys/devices/pci0000:00 (nested under their bridge), /sys/bus/pci/devices links, drivers with their
 * bind/unbind files, IOMMU groups with links both ways, relative links as the kernel makes them.
 * Written straight into the testbed directory: the simulated processes see it through umockdev.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simhost.h"

char *sim_path(struct simhost *h, const char *format, ...) {
        va_list ap;
        char *rel, *full;

        va_start(ap, format);
        rel = g_strdup_vprintf(format, ap);
        va_end(ap);
        full = g_strconcat(h->root, rel, NULL);
        g_free(rel);
        return full;
}

struct simdev *sim_find(struct simhost *h, const char *address) {
        for (guint i = 0; i < h->devices->len; i++) {
                struct simdev *d = g_ptr_array_index(h->devices, i);

                if (strcmp(d->address, address) == 0)
                        return d;
        }
        return NULL;
}

void simdev_free(struct simdev *d) {
        if (!d)
                return;
        g_free(d->devpath);
        g_free(d->native_driver);
        g_free(d->parent);
        g_free(d->failing_driver);
        g_free(d->reset_method);
        g_free(d);
}

static int parse_number(const char *value, unsigned long long max, unsigned long long *ret) {
        char *end;

        errno = 0;
        *ret = strtoull(value, &end, 0);
        return errno || *end || *ret > max ? -EINVAL : 0;
}

int simdev_parse(struct simdev *d, const char *address, const char *key, const char *value, char **error) {
        unsigned long long v = 0;
        int r = 0;

        if (strcmp(key, "vendor") == 0 && (r = parse_number(value, 0xffff, &v)) == 0)
                d->vendor = (uint16_t) v;
        else if (strcmp(key, "device") == 0 && (r = parse_number(value, 0xffff, &v)) == 0)
                d->device = (uint16_t) v;
        else if (strcmp(key, "subsystem_vendor") == 0 && (r = parse_number(value, 0xffff, &v)) == 0)
                d->subsystem_vendor = (uint16_t) v;
        else if (strcmp(key, "subsystem_device") == 0 && (r = parse_number(value, 0xffff, &v)) == 0)
                d->subsystem_device = (uint16_t) v;
        else if (strcmp(key, "class") == 0 && (r = parse_number(value, 0xffffff, &v)) == 0)
                d->class_code = (uint32_t) v;
        else if (strcmp(key, "revision") == 0 && (r = parse_number(value, 0xff, &v)) == 0)
                d->revision = (uint8_t) v;
        else if (strcmp(key, "iommu_group") == 0 && (r = parse_number(value, 100000, &v)) == 0)
                d->iommu_group = (int) v;
        else if (strcmp(key, "numa_node") == 0)
                d->numa_node = atoi(value);
        else if (strcmp(key, "boot_vga") == 0)
                d->boot_vga = strcmp(value, "1") == 0 || strcmp(value, "true") == 0;
        else if (strcmp(key, "serial") == 0 && (r = parse_number(value, UINT64_MAX, &v)) == 0) {
                d->has_serial = true;
                d->serial = v;
        } else if (strcmp(key, "native_driver") == 0) {
                g_free(d->native_driver);
                d->native_driver = *value ? g_strdup(value) : NULL;
        } else if (strcmp(key, "parent") == 0) {
                g_free(d->parent);
                d->parent = g_strdup(value);
        } else if (strcmp(key, "pcie") == 0)
                d->pcie = strcmp(value, "false") != 0 && strcmp(value, "0") != 0;
        else if (strcmp(key, "reset") == 0)
                d->reset = strcmp(value, "false") != 0 && strcmp(value, "0") != 0;
        else if (strcmp(key, "reset_method") == 0 && *value) {
                g_free(d->reset_method);
                d->reset_method = g_strdup(value);
        }
        else if (strcmp(key, "driver") == 0)
                ; /* the initial binding, applied by the caller */
        else if (r == 0) {
                *error = g_strdup_printf("%s: unknown key %s", address, key);
                return -EINVAL;
        }
        if (r < 0) {
                *error = g_strdup_printf("%s: bad value for %s: %s", address, key, value);
                return r;
        }
        return 0;
}

static void write_file(const char *path, const void *data, size_t len) {
        FILE *f = fopen(path, "we");

        if (!f)
                g_error("cannot write %s: %m", path);
        if (len && fwrite(data, 1, len, f) != len)
                g_error("cannot write %s", path);
        fclose(f);
}

static void write_attribute(struct simhost *h, struct simdev *d, const char *name, const char *format, ...)
        G_GNUC_PRINTF(4, 5);
static void write_attribute(struct simhost *h, struct simdev *d, const char *name, const char *format, ...) {
        va_list ap;
        char *value, *path;

        va_start(ap, format);
        value = g_strdup_vprintf(format, ap);
        va_end(ap);
        path = sim_path(h, "%s/%s", d->devpath, name);
        write_file(path, value, strlen(value));
        g_free(path);
        g_free(value);
}

/* "../" as many times as `path` (relative to /sys, e.g. "bus/pci/devices") has components, to reach /sys. */
static char *up_to_sys(const char *sys_relative_dir) {
        GString *s = g_string_new(NULL);

        for (const char *p = sys_relative_dir; *p; p++)
                if (*p == '/')
                        g_string_append(s, "../");
        g_string_append(s, "../");
        return g_string_free(s, FALSE);
}

/* Creates a symlink at /sys/<at_dir>/<name> pointing to /sys/<target>, relative, as sysfs does. */
static void sys_link(struct simhost *h, const char *at_dir, const char *name, const char *target) {
        char *up = up_to_sys(at_dir), *dir = sim_path(h, "/sys/%s", at_dir), *link = g_strdup_printf("%s/%s", dir, name);
        char *value = g_strconcat(up, target, NULL);

        g_mkdir_with_parents(dir, 0755);
        unlink(link);
        if (symlink(value, link) < 0)
                g_error("cannot link %s: %m", link);
        g_free(up);
        g_free(dir);
        g_free(link);
        g_free(value);
}

void sim_load_driver(struct simhost *h, const char *name) {
        static const char * const files[] = { "bind", "unbind", "new_id", "remove_id" };
        char *dir = sim_path(h, "/sys/bus/pci/drivers/%s", name);

        g_mkdir_with_parents(dir, 0755);
        for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
                char *p = g_strdup_printf("%s/%s", dir, files[i]);

                write_file(p, "", 0);
                chmod(p, 0200);
                g_free(p);
        }
        g_free(dir);
}

/* Config space: the header, a PCI Express capability, and a Device Serial Number extended capability. */
static void write_config(struct simhost *h, struct simdev *d) {
        size_t size = d->pcie ? 4096 : 256;
        uint8_t *c = g_malloc0(size);
        bool bridge = (d->class_code >> 8) == 0x0604;
        char *path;

        c[0x00] = d->vendor & 0xff;
        c[0x01] = d->vendor >> 8;
        c[0x02] = d->device & 0xff;
        c[0x03] = d->device >> 8;
        c[0x06] = d->pcie ? 0x10 : 0x00; /* status: capabilities list, when there is one */
        c[0x08] = d->revision;
        c[0x09] = d->class_code & 0xff;
        c[0x0a] = (d->class_code >> 8) & 0xff;
        c[0x0b] = (d->class_code >> 16) & 0xff;
        c[0x0e] = bridge ? 0x01 : 0x00;
        if (bridge) {
                /* Primary bus, and the bus range behind the bridge (its children's buses): lspci -t draws the
                 * tree from these. */
                c[0x18] = (uint8_t) d->bus;
                c[0x19] = (uint8_t) d->secondary_bus;
                c[0x1a] = (uint8_t) d->subordinate_bus;
        } else {
                c[0x2c] = d->subsystem_vendor & 0xff;
                c[0x2d] = d->subsystem_vendor >> 8;
                c[0x2e] = d->subsystem_device & 0xff;
                c[0x2f] = d->subsystem_device >> 8;
        }
        if (d->pcie) {
                c[0x34] = 0x40;
                c[0x40] = 0x10; /* PCI Express capability, end of list */
                c[0x42] = bridge ? 0x42 : 0x02; /* version 2; a bridge is a root port, anything else an endpoint */
                if (d->has_serial) {
                        uint32_t header = 0x0003 | 1u << 16;

                        memcpy(c + 0x100, &header, 4);
                        for (int i = 0; i < 8; i++)
                                c[0x104 + i] = (uint8_t) (d->serial >> (8 * i));
                }
        }
        path = sim_path(h, "%s/config", d->devpath);
        write_file(path, c, size);
        g_free(path);
        g_free(c);
}

/* A bridge's secondary/subordinate buses cover the buses of what is behind it; recomputed when that
 * changes (fixture load, ctl add, rescan). */
void sim_update_bridges(struct simhost *h) {
        for (guint i = 0; i < h->devices->len; i++) {
                struct simdev *b = g_ptr_array_index(h->devices, i);
                int lowest = 0, highest = 0;

                if ((b->class_code >> 8) != 0x0604)
                        continue;
                for (guint j = 0; j < h->devices->len; j++) {
                        struct simdev *c = g_ptr_array_index(h->devices, j);

                        if (!c->parent || strcmp(c->parent, b->address) != 0)
                                continue;
                        if (!lowest || c->bus < lowest)
                                lowest = c->bus;
                        if (c->bus > highest)
                                highest = c->bus;
                }
                if (b->secondary_bus == lowest && b->subordinate_bus == highest)
                        continue;
                b->secondary_bus = lowest;
                b->subordinate_bus = highest;
                write_config(h, b);
        }
}

void sim_write_uevent_file(struct simhost *h, struct simdev *d, const char *driver) {
        GString *s = g_string_new(NULL);
        char *path;

        if (driver)
                g_string_append_printf(s, "DRIVER=%s\n", driver);
        g_string_append_printf(s, "PCI_CLASS=%X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\nPCI_SLOT_NAME=%s\n"
                               "MODALIAS=pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n",
                               d->class_code, d->vendor, d->device, d->subsystem_vendor, d->subsystem_device,
                               d->address, d->vendor, d->device, d->subsystem_vendor, d->subsystem_device,
                               d->class_code >> 16, (d->class_code >> 8) & 0xff, d->class_code & 0xff);
        path = sim_path(h, "%s/uevent", d->devpath);
        write_file(path, s->str, s->len);
        g_free(path);
        g_string_free(s, TRUE);
}

int sim_create_device(struct simhost *h, struct simdev *d, const char *initial_driver) {
        char *dir, *rel, *resource;
        GString *res = g_string_new(NULL);

        unsigned bus = 0;

        g_clear_pointer(&d->devpath, g_free); /* from before a removal, when a rescan brings it back */
        if (d->parent) {
                struct simdev *p = sim_find(h, d->parent);

                if (!p)
                        return -ENOENT;
                d->devpath = g_strdup_printf("%s/%s", p->devpath, d->address);
        } else
                d->devpath = g_strdup_printf("/sys/devices/pci0000:00/%s", d->address);
        if (sscanf(d->address, "%*x:%x", &bus) == 1)
                d->bus = (int) bus;
        dir = sim_path(h, "%s", d->devpath);
        g_mkdir_with_parents(dir, 0755);

        write_attribute(h, d, "vendor", "0x%04x\n", d->vendor);
        write_attribute(h, d, "device", "0x%04x\n", d->device);
        write_attribute(h, d, "subsystem_vendor", "0x%04x\n", d->subsystem_vendor);
        write_attribute(h, d, "subsystem_device", "0x%04x\n", d->subsystem_device);
        write_attribute(h, d, "class", "0x%06x\n", d->class_code);
        write_attribute(h, d, "revision", "0x%02x\n", d->revision);
        write_attribute(h, d, "irq", "0\n");
        write_attribute(h, d, "numa_node", "%d\n", d->numa_node);
        write_attribute(h, d, "enable", "1\n");
        write_attribute(h, d, "local_cpus", "ff\n");
        write_attribute(h, d, "driver_override", "(null)\n");
        write_attribute(h, d, "remove", "%s", "");
        /* The kernel shows both only for a device it knows a way to reset (pci_dev_reset_attr_is_visible()). */
        if (d->reset) {
                write_attribute(h, d, "reset", "%s", "");
                write_attribute(h, d, "reset_method", "%s\n", d->reset_method ?: d->pcie ? "flr bus" : "bus");
        }
        /* The kernel creates boot_vga only for VGA-class devices. */
        if ((d->class_code >> 8) == 0x0300)
                write_attribute(h, d, "boot_vga", "%d\n", d->boot_vga ? 1 : 0);
        write_attribute(h, d, "modalias", "pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n", d->vendor, d->device,
                        d->subsystem_vendor, d->subsystem_device, d->class_code >> 16, (d->class_code >> 8) & 0xff,
                        d->class_code & 0xff);
        /* pci_resource_show(): the BARs, the ROM and the SR-IOV BARs; a bridge adds its 4 windows. */
        for (int i = 0; i < ((d->class_code >> 8) == 0x0604 ? 17 : 13); i++)
                g_string_append(res, "0x0000000000000000 0x0000000000000000 0x0000000000000000\n");
        resource = sim_path(h, "%s/resource", d->devpath);
        write_file(resource, res->str, res->len);
        g_free(resource);
        g_string_free(res, TRUE);
        write_config(h, d);
        sim_write_uevent_file(h, d, NULL);

        rel = g_strdup(d->devpath + strlen("/sys/"));
        sys_link(h, rel, "subsystem", "bus/pci");
        sys_link(h, "bus/pci/devices", d->address, rel);
        if (h->iommu && d->iommu_group >= 0) {
                char *group_dir = g_strdup_printf("kernel/iommu_groups/%d/devices", d->iommu_group);
                char *group = g_strdup_printf("kernel/iommu_groups/%d", d->iommu_group);

                sys_link(h, group_dir, d->address, rel);
                sys_link(h, rel, "iommu_group", group);
                g_free(group_dir);
                g_free(group);
        }
        g_free(rel);
        g_free(dir);
        if (initial_driver && *initial_driver)
                sim_bind(h, d, initial_driver, false);
        return 0;
}

int sim_load_fixture(struct simhost *h, const char *path, char **error) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;
        g_auto(GStrv) groups = NULL, drivers = NULL, modules = NULL;
        g_autofree char *iommu = NULL;

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
                *error = g_strdup_printf("%s: %s", path, e->message);
                return -EINVAL;
        }
        {
                /* The bus exists with or without drivers and devices. */
                g_autofree char *devices = sim_path(h, "/sys/bus/pci/devices");
                g_autofree char *drivers_dir = sim_path(h, "/sys/bus/pci/drivers");

                g_mkdir_with_parents(devices, 0755);
                g_mkdir_with_parents(drivers_dir, 0755);
        }
        iommu = g_key_file_get_string(kf, "host", "iommu", NULL);
        h->iommu = !iommu || strcmp(iommu, "off") != 0;
        drivers = g_key_file_get_string_list(kf, "host", "drivers", NULL, NULL);
        for (char **dr = drivers; dr && *dr; dr++)
                sim_load_driver(h, g_strstrip(*dr));
        modules = g_key_file_get_string_list(kf, "host", "modules", NULL, NULL);
        if (modules && sim_write_modules(h, modules, error) < 0)
                return -EINVAL;
        if (h->iommu) {
                char *dir = sim_path(h, "/sys/kernel/iommu_groups");

                g_mkdir_with_parents(dir, 0755);
                g_free(dir);
        }
        {
                char *probe = sim_path(h, "/sys/bus/pci/drivers_probe"), *rescan = sim_path(h, "/sys/bus/pci/rescan");

                write_file(probe, "", 0);
                write_file(rescan, "", 0);
                g_free(probe);
                g_free(rescan);
        }

        {
                /* The host's size, as lsmem and the agent read it: online CPUs, memory blocks of 128 MiB. */
                guint64 cpus = (guint64) g_key_file_get_uint64(kf, "host", "cpus", NULL);
                guint64 memory = (guint64) g_key_file_get_uint64(kf, "host", "memory_mib", NULL);

                if (cpus > 0) {
                        char *dir = sim_path(h, "/sys/devices/system/cpu"), *online;
                        g_autofree char *list = cpus == 1 ? g_strdup("0\n") :
                                                g_strdup_printf("0-%" G_GUINT64_FORMAT "\n", cpus - 1);

                        g_mkdir_with_parents(dir, 0755);
                        online = g_build_filename(dir, "online", NULL);
                        write_file(online, list, strlen(list));
                        g_free(online);
                        g_free(dir);
                }
                if (memory > 0) {
                        char *file = sim_path(h, "/sys/devices/system/memory/block_size_bytes");
                        g_autofree char *base = sim_path(h, "/sys/devices/system/memory");

                        g_mkdir_with_parents(base, 0755);
                        write_file(file, "8000000\n", 9);
                        g_free(file);
                        for (guint64 i = 0; i < (memory + 127) / 128; i++) {
                                char *dir = sim_path(h, "/sys/devices/system/memory/memory%" G_GUINT64_FORMAT, i);
                                char *online = g_build_filename(dir, "online", NULL);

                                g_mkdir_with_parents(dir, 0755);
                                write_file(online, "1\n", 2);
                                g_free(online);
                                g_free(dir);
                        }
                }
        }

        groups = g_key_file_get_groups(kf, NULL);
        for (char **g = groups; *g; g++) {
                g_auto(GStrv) keys = NULL;
                g_autofree char *driver = NULL;
                struct simdev *d;
                int r;

                if (!g_str_has_prefix(*g, "device "))
                        continue;
                d = g_new0(struct simdev, 1);
                g_strlcpy(d->address, *g + strlen("device "), sizeof(d->address));
                d->iommu_group = -1;
                d->numa_node = -1;
                d->pcie = true;
                d->reset = true;
                keys = g_key_file_get_keys(kf, *g, NULL, NULL);
                for (char **k = keys; k && *k; k++) {
                        g_autofree char *v = g_key_file_get_string(kf, *g, *k, NULL);

                        r = simdev_parse(d, d->address, *k, v ?: "", error);
                        if (r < 0) {
                                simdev_free(d);
                                return r;
                        }
                }
                driver = g_key_file_get_string(kf, *g, "driver", NULL);
                if (!d->native_driver && driver && *driver && strcmp(driver, "vfio-pci") != 0)
                        d->native_driver = g_strdup(driver);
                g_ptr_array_add(h->devices, d);
                r = sim_create_device(h, d, driver);
                if (r < 0) {
                        *error = g_strdup_printf("%s: parent %s must come first", d->address, d->parent);
                        return r;
                }
        }
        sim_update_bridges(h);
        return 0;
}
