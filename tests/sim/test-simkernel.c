/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Checks the simulated host against the kernel semantics the agent relies on, as a client sees them
 * through libudev and plain file I/O: run under gpupass-simhost with fixtures/single.ini (TAP output).
 */
#include <errno.h>
#include <fcntl.h>
#include <libudev.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define GPU "0000:3b:00.0"
#define AUDIO "0000:3b:00.1"
#define DEV(address, attribute) "/sys/bus/pci/devices/" address "/" attribute

static int failures, checks;

#define CHECK(cond, ...)                                                        \
        do {                                                                    \
                checks++;                                                       \
                if (cond)                                                       \
                        printf("ok %d - ", checks);                             \
                else {                                                          \
                        printf("not ok %d - ", checks);                         \
                        failures++;                                             \
                }                                                               \
                printf(__VA_ARGS__);                                            \
                printf("\n");                                                   \
                fflush(stdout);                                                 \
        } while (0)

/* One write(2), as the agent does it: 0 or -errno. */
static int sysfs_write(const char *path, const char *value) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = write(fd, value, strlen(value));
        close(fd);
        return n < 0 ? -errno : 0;
}

static void read_line(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");

        buf[0] = '\0';
        if (f) {
                if (!fgets(buf, (int) size, f))
                        buf[0] = '\0';
                fclose(f);
        }
}

static void driver_of(const char *address, char *buf, size_t size) {
        char path[256], target[256];
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", address);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0) {
                snprintf(buf, size, "none");
                return;
        }
        target[n] = '\0';
        snprintf(buf, size, "%s", target);
}

static int ctl(const char *command) {
        char line[512];

        snprintf(line, sizeof(line), "\"$GPUPASS_SIMHOST\" ctl \"$GPUPASS_SIMHOST_CTL\" %s >/dev/null", command);
        return system(line);
}

struct event {
        char action[32], driver[64], subsystem[32], devpath[128], pci_class[16], pci_id[16], subsys_id[16],
                slot[16], modalias[80];
};

static void copy_property(struct udev_device *d, const char *key, char *buf, size_t size) {
        const char *v = udev_device_get_property_value(d, key);

        snprintf(buf, size, "%s", v ? v : "");
}

/* Waits for the next uevent of `address` (skipping other devices'). */
static int next_event(struct udev_monitor *mon, const char *address, struct event *e) {
        struct pollfd p = { .fd = udev_monitor_get_fd(mon), .events = POLLIN };

        while (poll(&p, 1, 3000) > 0) {
                struct udev_device *d = udev_monitor_receive_device(mon);

                if (!d)
                        continue;
                if (strcmp(udev_device_get_sysname(d), address) != 0) {
                        udev_device_unref(d);
                        continue;
                }
                copy_property(d, "ACTION", e->action, sizeof(e->action));
                copy_property(d, "DRIVER", e->driver, sizeof(e->driver));
                copy_property(d, "SUBSYSTEM", e->subsystem, sizeof(e->subsystem));
                copy_property(d, "DEVPATH", e->devpath, sizeof(e->devpath));
                copy_property(d, "PCI_CLASS", e->pci_class, sizeof(e->pci_class));
                copy_property(d, "PCI_ID", e->pci_id, sizeof(e->pci_id));
                copy_property(d, "PCI_SUBSYS_ID", e->subsys_id, sizeof(e->subsys_id));
                copy_property(d, "PCI_SLOT_NAME", e->slot, sizeof(e->slot));
                copy_property(d, "MODALIAS", e->modalias, sizeof(e->modalias));
                udev_device_unref(d);
                return 0;
        }
        return -ETIMEDOUT;
}

static bool got(struct udev_monitor *mon, const char *address, const char *action, const char *driver) {
        struct event e;

        if (next_event(mon, address, &e) < 0) {
                printf("# no %s event for %s\n", action, address);
                return false;
        }
        if (strcmp(e.action, action) != 0 || strcmp(e.driver, driver) != 0) {
                printf("# expected %s DRIVER=%s for %s, got %s DRIVER=%s\n", action, driver, address, e.action, e.driver);
                return false;
        }
        return true;
}

/* Consumes whatever is queued, so that the next check sees only new events. */
static void drain(struct udev_monitor *mon) {
        struct pollfd p = { .fd = udev_monitor_get_fd(mon), .events = POLLIN };

        while (poll(&p, 1, 200) > 0) {
                struct udev_device *d = udev_monitor_receive_device(mon);

                if (d)
                        udev_device_unref(d);
        }
}

static struct udev_monitor *monitor(struct udev *udev, const char *name) {
        struct udev_monitor *mon = udev_monitor_new_from_netlink(udev, name);

        if (!mon || udev_monitor_filter_add_match_subsystem_devtype(mon, "pci", NULL) < 0 ||
            udev_monitor_enable_receiving(mon) < 0) {
                printf("Bail out! cannot start the %s monitor\n", name);
                exit(1);
        }
        return mon;
}

/* The class attribute of `address` as libudev enumeration finds it, or "" when the device is not listed. */
static int enumerate(struct udev *udev, const char *address, char *class, size_t size) {
        struct udev_enumerate *e = udev_enumerate_new(udev);
        struct udev_list_entry *item;
        int n = 0;

        class[0] = '\0';
        udev_enumerate_add_match_subsystem(e, "pci");
        udev_enumerate_scan_devices(e);
        udev_list_entry_foreach(item, udev_enumerate_get_list_entry(e)) {
                struct udev_device *d = udev_device_new_from_syspath(udev, udev_list_entry_get_name(item));

                n++;
                if (d && strcmp(udev_device_get_sysname(d), address) == 0)
                        snprintf(class, size, "%s", udev_device_get_sysattr_value(d, "class") ?: "?");
                udev_device_unref(d);
        }
        udev_enumerate_unref(e);
        return n;
}

/*
 * Another process with its own monitor, started before ours so that both get the same fd numbers: umockdev
 * alone binds uevent sockets by fd number and the second process would steal the first one's (the shim
 * makes them per process). Tells the parent it listens, then waits for the GPU's bind to vfio-pci.
 */
static pid_t start_other_listener(int ready_fd) {
        pid_t pid = fork();

        if (pid == 0) {
                struct udev *udev = udev_new();
                struct udev_monitor *mon = monitor(udev, "udev");
                struct event e;

                if (write(ready_fd, "r", 1) != 1)
                        _exit(3);
                while (next_event(mon, GPU, &e) == 0)
                        if (strcmp(e.action, "bind") == 0 && strcmp(e.driver, "vfio-pci") == 0)
                                _exit(0);
                _exit(1);
        }
        return pid;
}

static void check_identity_and_reading(struct udev *udev) {
        char buf[256];
        int n = enumerate(udev, GPU, buf, sizeof(buf));

        CHECK(n == 2, "libudev enumerates the 2 PCI functions of the fixture (got %d)", n);
        CHECK(strcmp(buf, "0x030000") == 0, "class sysattr through libudev (%s)", buf);
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strcmp(buf, "../../../bus/pci/drivers/nouveau") == 0, "GPU starts on nouveau, relative link (%s)", buf);
        read_line(DEV(GPU, "driver_override"), buf, sizeof(buf));
        CHECK(strcmp(buf, "(null)\n") == 0, "driver_override reads (null) when unset");
        CHECK(access(DEV(GPU, "boot_vga"), F_OK) == 0 && access(DEV(AUDIO, "boot_vga"), F_OK) < 0,
              "boot_vga exists for the VGA function only");
}

static void check_to_vfio(struct udev_monitor *mon, struct udev_monitor *kmon) {
        char buf[256], big[5000];
        struct event e;
        int r;

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        r = sysfs_write(DEV(GPU, "driver_override"), big);
        CHECK(r == -EINVAL, "an override longer than a page: EINVAL (%d)", r);

        CHECK(sysfs_write(DEV(GPU, "driver_override"), "vfio-pci") == 0, "write driver_override");
        read_line(DEV(GPU, "driver_override"), buf, sizeof(buf));
        CHECK(strcmp(buf, "vfio-pci\n") == 0, "driver_override reads back vfio-pci\\n");
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strstr(buf, "/nouveau") != NULL, "an override alone does not rebind (%s)", buf);

        r = sysfs_write("/sys/bus/pci/drivers/snd_hda_intel/unbind", GPU);
        CHECK(r == -ENODEV, "unbind from a driver the device is not bound to: ENODEV (%d)", r);
        r = sysfs_write("/sys/bus/pci/drivers/vfio-pci/bind", GPU);
        CHECK(r == -EBUSY, "bind of a bound device by a matching driver: EBUSY (%d)", r);
        r = sysfs_write("/sys/bus/pci/drivers/snd_hda_intel/bind", GPU);
        CHECK(r == -ENODEV, "bind by a driver the override excludes: ENODEV (%d)", r);
        r = sysfs_write("/sys/bus/pci/drivers/nouveau/unbind", GPU " ");
        CHECK(r == -ENODEV, "a trailing space is part of the name (sysfs_streq): ENODEV (%d)", r);

        CHECK(sysfs_write("/sys/bus/pci/drivers/nouveau/unbind", GPU "\n") == 0, "unbind from nouveau");
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strcmp(buf, "none") == 0, "no driver link after unbind (%s)", buf);
        CHECK(access("/sys/bus/pci/drivers/nouveau/" GPU, F_OK) < 0, "the driver's link to the device is gone");
        CHECK(got(mon, GPU, "unbind", ""), "unbind uevent without DRIVER");

        {
                /* pwrite(), as some callers do: sysfs ignores the offset. */
                int fd = open("/sys/bus/pci/drivers_probe", O_WRONLY | O_CLOEXEC);

                r = fd < 0 ? -errno : (pwrite(fd, GPU, strlen(GPU), 7) == (ssize_t) strlen(GPU) ? 0 : -errno);
                if (fd >= 0)
                        close(fd);
        }
        CHECK(r == 0, "drivers_probe through pwrite (%d)", r);
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strcmp(buf, "../../../bus/pci/drivers/vfio-pci") == 0, "the probe honours the override (%s)", buf);
        CHECK(access("/sys/bus/pci/drivers/vfio-pci/" GPU "/vendor", F_OK) == 0,
              "drivers/vfio-pci/ADDR links to the device");
        r = next_event(mon, GPU, &e);
        CHECK(r == 0 && strcmp(e.action, "bind") == 0 && strcmp(e.driver, "vfio-pci") == 0,
              "bind uevent with DRIVER=vfio-pci (%s %s)", e.action, e.driver);
        CHECK(r == 0 && strcmp(e.subsystem, "pci") == 0 &&
              strcmp(e.devpath, "/devices/pci0000:00/0000:3b:00.0") == 0 && strcmp(e.pci_class, "30000") == 0 &&
              strcmp(e.pci_id, "10DE:13F2") == 0 && strcmp(e.subsys_id, "10DE:115E") == 0 &&
              strcmp(e.slot, GPU) == 0 && strncmp(e.modalias, "pci:v000010DEd000013F2sv000010DEsd0000115Ebc03sc00i00", 53) == 0,
              "bind uevent properties (%s %s %s %s %s %s %s)", e.subsystem, e.devpath, e.pci_class, e.pci_id,
              e.subsys_id, e.slot, e.modalias);
        CHECK(got(kmon, GPU, "unbind", "") && got(kmon, GPU, "bind", "vfio-pci"),
              "a \"kernel\" monitor receives the same unbind and bind");
}

static void check_back_to_host(struct udev_monitor *mon) {
        struct iovec iov[2] = { { .iov_base = (void *) "", .iov_len = 0 }, { .iov_base = (void *) "\n", .iov_len = 1 } };
        char buf[256];
        int fd, r;

        /* writev(), and the newline that clears the override (an empty write never reaches the kernel). */
        fd = open(DEV(GPU, "driver_override"), O_WRONLY | O_CLOEXEC);
        r = fd < 0 ? -errno : (writev(fd, iov, 2) == 1 ? 0 : -errno);
        if (fd >= 0)
                close(fd);
        CHECK(r == 0, "clear driver_override through writev (%d)", r);
        read_line(DEV(GPU, "driver_override"), buf, sizeof(buf));
        CHECK(strcmp(buf, "(null)\n") == 0, "a newline clears driver_override: (null)");
        CHECK(sysfs_write("/sys/bus/pci/drivers/vfio-pci/unbind", GPU) == 0, "unbind from vfio-pci");
        CHECK(sysfs_write("/sys/bus/pci/drivers_probe", GPU) == 0, "drivers_probe");
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strstr(buf, "/nouveau") != NULL, "the native driver takes it back (%s)", buf);
        CHECK(got(mon, GPU, "unbind", "") && got(mon, GPU, "bind", "nouveau"), "unbind, bind DRIVER=nouveau");
}

static void check_probe_without_driver(void) {
        char buf[256];
        int r;

        CHECK(sysfs_write(DEV(AUDIO, "driver_override"), "no-such-driver") == 0, "override naming an unloaded driver");
        CHECK(sysfs_write("/sys/bus/pci/drivers/snd_hda_intel/unbind", AUDIO) == 0, "unbind audio");
        r = sysfs_write("/sys/bus/pci/drivers_probe", AUDIO);
        driver_of(AUDIO, buf, sizeof(buf));
        CHECK(r == 0 && strcmp(buf, "none") == 0, "drivers_probe succeeds and nothing binds (%d, %s)", r, buf);
        r = sysfs_write("/sys/bus/pci/drivers_probe", "0000:99:00.0");
        CHECK(r == -ENODEV, "drivers_probe of an unknown address: ENODEV (%d)", r);
        CHECK(sysfs_write(DEV(AUDIO, "driver_override"), "\n") == 0, "clear the audio override");
        r = sysfs_write("/sys/bus/pci/drivers/vfio-pci/bind", AUDIO);
        CHECK(r == -ENODEV, "vfio-pci has no ID table: bind without override is ENODEV (%d)", r);
        CHECK(sysfs_write("/sys/bus/pci/drivers/snd_hda_intel/bind", AUDIO) == 0, "bind by the native driver");
        driver_of(AUDIO, buf, sizeof(buf));
        CHECK(strstr(buf, "/snd_hda_intel") != NULL, "audio back on snd_hda_intel (%s)", buf);
}

static void check_driver_load(struct udev_monitor *mon) {
        char buf[256];

        drain(mon);
        CHECK(ctl("driver-unload snd_hda_intel") == 0, "ctl driver-unload snd_hda_intel");
        driver_of(AUDIO, buf, sizeof(buf));
        CHECK(strcmp(buf, "none") == 0 && access("/sys/bus/pci/drivers/snd_hda_intel", F_OK) < 0,
              "unloading unbinds its devices and removes the driver (%s)", buf);
        CHECK(got(mon, AUDIO, "unbind", ""), "unbind uevent on unload");
        CHECK(ctl("driver-load snd_hda_intel") == 0, "ctl driver-load snd_hda_intel");
        driver_of(AUDIO, buf, sizeof(buf));
        CHECK(strstr(buf, "/snd_hda_intel") != NULL, "a loaded driver takes the devices it matches (%s)", buf);
        CHECK(got(mon, AUDIO, "bind", "snd_hda_intel"), "bind uevent on load");
}

static void check_sysfs_remove_rescan(struct udev *udev, struct udev_monitor *mon) {
        char buf[256];
        int r;

        CHECK(sysfs_write(DEV(AUDIO, "driver_override"), "vfio-pci") == 0, "override on the audio function");
        r = sysfs_write(DEV(AUDIO, "remove"), "1");
        CHECK(r == 0, "sysfs remove (%d)", r);
        CHECK(got(mon, AUDIO, "unbind", "") && got(mon, AUDIO, "remove", ""), "unbind, then remove uevent");
        CHECK(enumerate(udev, AUDIO, buf, sizeof(buf)) == 1 && !buf[0], "gone from enumeration");
        CHECK(access("/sys/kernel/iommu_groups/12/devices/" AUDIO, F_OK) < 0, "gone from its IOMMU group");
        r = sysfs_write("/sys/bus/pci/rescan", "1");
        CHECK(r == 0, "rescan (%d)", r);
        CHECK(got(mon, AUDIO, "add", "") && got(mon, AUDIO, "bind", "snd_hda_intel"),
              "rescan finds it again: add, then bind by its native driver");
        read_line(DEV(AUDIO, "driver_override"), buf, sizeof(buf));
        CHECK(strcmp(buf, "(null)\n") == 0, "a re-found device starts without override (a new pci_dev)");
}

static void check_reflash(struct udev *udev, struct udev_monitor *mon) {
        char buf[256];
        int n;

        drain(mon);
        /* Hot removal and a re-enumeration with another class: what a reflash looks like. */
        CHECK(ctl("remove " GPU) == 0, "ctl remove");
        CHECK(got(mon, GPU, "unbind", ""), "unbind before remove");
        CHECK(got(mon, GPU, "remove", ""), "remove uevent");
        n = enumerate(udev, GPU, buf, sizeof(buf));
        CHECK(n == 1 && !buf[0] && access("/sys/bus/pci/devices/" GPU, F_OK) < 0, "the GPU is gone (%d listed)", n);
        CHECK(access("/sys/kernel/iommu_groups/12/devices/" GPU, F_OK) < 0, "gone from its IOMMU group");
        CHECK(ctl("remove " GPU) != 0, "ctl remove of a missing device fails");
        CHECK(ctl("add " GPU " vendor=0x10de device=0x13f2 subsystem_vendor=0x10de subsystem_device=0x115e "
                  "class=0x030200 iommu_group=12 driver=nouveau") == 0, "ctl add");
        CHECK(got(mon, GPU, "add", ""), "add uevent");
        CHECK(got(mon, GPU, "bind", "nouveau"), "then bind by the native driver");
        n = enumerate(udev, GPU, buf, sizeof(buf));
        CHECK(n == 2 && strcmp(buf, "0x030200") == 0, "back in enumeration with the new class (%s)", buf);
        CHECK(access(DEV(GPU, "boot_vga"), F_OK) < 0, "no boot_vga for a 3D controller");
        CHECK(access("/sys/kernel/iommu_groups/12/devices/" GPU, F_OK) == 0, "back in IOMMU group 12");
        CHECK(ctl("add 3b:00.0 class=0x030000") != 0, "ctl add checks the address");
}

int main(void) {
        struct udev *udev;
        struct udev_monitor *mon, *kmon;
        int ready[2], status = -1;
        char c;
        pid_t other;

        if (!getenv("GPUPASS_SIMHOST") || !getenv("GPUPASS_SIMHOST_CTL")) {
                printf("Bail out! run under gpupass-simhost with $GPUPASS_SIMHOST set\n");
                return 1;
        }
        if (pipe2(ready, O_CLOEXEC) < 0)
                return 1;
        other = start_other_listener(ready[1]);
        if (read(ready[0], &c, 1) != 1)
                return 1;

        /* The monitors listen before anything happens, as the agent's do. */
        udev = udev_new();
        mon = monitor(udev, "udev");
        kmon = monitor(udev, "kernel");

        check_identity_and_reading(udev);
        check_to_vfio(mon, kmon);
        /* Not read from now on: unread events would fill its socket (10 datagrams) and be dropped. */
        udev_monitor_unref(kmon);
        waitpid(other, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "a monitor in another process with the same fd numbers got the bind too");
        check_back_to_host(mon);
        check_probe_without_driver();
        check_driver_load(mon);
        check_sysfs_remove_rescan(udev, mon);
        check_reflash(udev, mon);

        udev_monitor_unref(mon);
        udev_unref(udev);
        printf("1..%d\n", checks);
        return failures ? 1 : 0;
}
