/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <umockdev.h>

/* One PCI function of the simulated host, as the fixture describes it. */
struct simdev {
        char address[16];
        char *devpath;        /* "/sys/devices/pci0000:00/[parent/]ADDR" */
        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        uint32_t class_code;
        uint8_t revision;
        int iommu_group;      /* -1: none */
        char *native_driver;  /* what an ID-table probe binds; NULL: none */
        bool boot_vga;
        int numa_node;
        int bus;              /* from the address */
        int secondary_bus, subordinate_bus; /* bridges: the buses behind them */
        bool has_serial;
        uint64_t serial;
        char *parent;         /* upstream bridge address or NULL */
        bool pcie;
        bool reset;           /* has a reset method (a `reset` attribute) */
        char *reset_method;   /* what its `reset_method` lists; NULL: "flr bus" (PCIe) or "bus" */
        char *failing_driver; /* this driver's probe fails for the device (ctl fail-probe) */
        int reset_errno;      /* a write to its reset fails with this (ctl fail-reset), 0: succeeds */
};

struct simhost {
        UMockdevTestbed *testbed;
        char *root;           /* the testbed directory; "/sys" lives under it */
        bool iommu;
        GPtrArray *devices;   /* struct simdev * */
        GPtrArray *removed;   /* removed through sysfs `remove`: still in the slot, a rescan finds them again */
        unsigned unbind_delay_ms; /* how long a driver's remove() takes (ctl unbind-delay) */
        unsigned reset_delay_ms;  /* how long a function reset takes (ctl reset-delay) */
};

/* simtree.c: the sysfs tree */
char *sim_path(struct simhost *h, const char *format, ...) G_GNUC_PRINTF(2, 3);
struct simdev *sim_find(struct simhost *h, const char *address);
/* Parses one device from key=value pairs (fixture group or ctl add). */
int simdev_parse(struct simdev *d, const char *address, const char *key, const char *value, char **error);
void simdev_free(struct simdev *d);
/* The uevent attribute (what a uevent carries), with DRIVER= when bound. */
void sim_write_uevent_file(struct simhost *h, struct simdev *d, const char *driver);
int sim_create_device(struct simhost *h, struct simdev *d, const char *initial_driver);
void sim_load_driver(struct simhost *h, const char *name);
void sim_update_bridges(struct simhost *h);
int sim_load_fixture(struct simhost *h, const char *path, char **error);

/* simmodules.c: the modules directory libkmod reads (fixture key `modules`) */
char *sim_module_name(const char *name);
int sim_write_modules(struct simhost *h, char **modules, char **error);

/* simkernel.c: the kernel's semantics for writes */
char *sim_read_driver(struct simhost *h, struct simdev *d);
char *sim_read_override(struct simhost *h, struct simdev *d);
void sim_bind(struct simhost *h, struct simdev *d, const char *driver, bool emit);
void sim_unbind(struct simhost *h, struct simdev *d, bool emit);
/* The kernel's probe: override or native driver, if loaded. */
void sim_probe(struct simhost *h, struct simdev *d);
/* Unbinds (what is behind a bridge first) and removes the device; `unplugged`: gone for good, else a
 * rescan finds it again. */
void sim_remove(struct simhost *h, struct simdev *d, bool unplugged);
/* simuevent.c: sends the uevent to every monitor of the simulated processes, with the properties of the
 * device's uevent attribute. */
void sim_uevent(struct simhost *h, struct simdev *d, const char *action);
/* Applies a write of `data` to the sysfs file `path` ("/sys/..."); bytes consumed or -errno. The path
 * "finit_module" is the preload's finit_module() of the module file named by `data` ("/lib/modules/..."):
 * 0 or -errno. */
int64_t sim_kernel_write(struct simhost *h, const char *path, const char *data, size_t len);
/* A control command ("remove ADDR", ...); the reply is "OK" or "ERR ...". */
char *sim_control(struct simhost *h, const char *command);
