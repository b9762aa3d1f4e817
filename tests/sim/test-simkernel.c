/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Checks the simulated host against the kernel semantics the agent relies on, as a client sees them
 * through libudev and plain file I/O: run under gpupass-simhost with fixtures/single.ini.
 */
#include <errno.h>
#include <fcntl.h>
#include <libudev.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GPU "0000:3b:00.0"
#define AUDIO "0000:3b:00.1"

static int failures, checks;

#define CHECK(cond, ...)                                                        \
        do {                                                                    \
                checks++;                                                       \
                if (cond)                                                       \
                        printf("ok - " __VA_ARGS__);                            \
                else {                                                          \
                        printf("not ok - " __VA_ARGS__);                        \
                        failures++;                                             \
                }                                                               \
                printf("\n");                                                   \
        } while (0)

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
        snprintf(buf, size, "%s", strrchr(target, '/') + 1);
}

/* Waits for the next uevent of `address` and returns its action (and DRIVER property). */
static int next_event(struct udev_monitor *mon, const char *address, char *action, size_t size, char *driver,
                      size_t dsize) {
        struct pollfd p = { .fd = udev_monitor_get_fd(mon), .events = POLLIN };

        while (poll(&p, 1, 2000) > 0) {
                struct udev_device *d = udev_monitor_receive_device(mon);
                const char *a, *dr;

                if (!d)
                        continue;
                if (strcmp(udev_device_get_sysname(d), address) != 0) {
                        udev_device_unref(d);
                        continue;
                }
                a = udev_device_get_action(d);
                dr = udev_device_get_property_value(d, "DRIVER");
                snprintf(action, size, "%s", a ? a : "");
                snprintf(driver, dsize, "%s", dr ? dr : "");
                udev_device_unref(d);
                return 0;
        }
        return -ETIMEDOUT;
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

int main(void) {
        struct udev *udev = udev_new();
        struct udev_monitor *mon = udev_monitor_new_from_netlink(udev, "udev");
        struct udev_enumerate *e;
        struct udev_list_entry *item;
        char buf[256], action[32], driver[64], ctl[512];
        const char *ctl_socket = getenv("GPUPASS_SIMHOST_CTL"), *self = getenv("GPUPASS_SIMHOST");
        int n = 0, r;

        udev_monitor_filter_add_match_subsystem_devtype(mon, "pci", NULL);
        udev_monitor_enable_receiving(mon);

        e = udev_enumerate_new(udev);
        udev_enumerate_add_match_subsystem(e, "pci");
        udev_enumerate_scan_devices(e);
        udev_list_entry_foreach(item, udev_enumerate_get_list_entry(e)) n++;
        udev_enumerate_unref(e);
        CHECK(n == 2, "libudev enumerates the 2 PCI functions of the fixture (got %d)", n);

        driver_of(GPU, buf, sizeof(buf));
        CHECK(strcmp(buf, "nouveau") == 0, "GPU starts on nouveau (%s)", buf);
        read_line("/sys/bus/pci/devices/" GPU "/driver_override", buf, sizeof(buf));
        CHECK(strcmp(buf, "(null)\n") == 0, "driver_override reads (null) when unset");

        CHECK(sysfs_write("/sys/bus/pci/devices/" GPU "/driver_override", "vfio-pci") == 0, "write driver_override");
        read_line("/sys/bus/pci/devices/" GPU "/driver_override", buf, sizeof(buf));
        CHECK(strcmp(buf, "vfio-pci\n") == 0, "driver_override reads vfio-pci");
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strcmp(buf, "nouveau") == 0, "an override alone does not rebind (%s)", buf);

        r = sysfs_write("/sys/bus/pci/drivers/snd_hda_intel/unbind", GPU);
        CHECK(r == -ENODEV, "unbind from a driver the device is not bound to: ENODEV (%d)", r);
        r = sysfs_write("/sys/bus/pci/drivers/vfio-pci/bind", GPU);
        CHECK(r == -EBUSY, "bind of a bound device: EBUSY (%d)", r);

        CHECK(sysfs_write("/sys/bus/pci/drivers/nouveau/unbind", GPU) == 0, "unbind from nouveau");
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strcmp(buf, "none") == 0, "unbound after unbind (%s)", buf);
        CHECK(next_event(mon, GPU, action, sizeof(action), driver, sizeof(driver)) == 0 &&
              strcmp(action, "unbind") == 0, "unbind uevent received (%s)", action);

        CHECK(sysfs_write("/sys/bus/pci/drivers_probe", GPU "\n") == 0, "drivers_probe");
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strcmp(buf, "vfio-pci") == 0, "the probe honours the override: vfio-pci (%s)", buf);
        CHECK(next_event(mon, GPU, action, sizeof(action), driver, sizeof(driver)) == 0 &&
              strcmp(action, "bind") == 0 && strcmp(driver, "vfio-pci") == 0,
              "bind uevent with DRIVER=vfio-pci (%s %s)", action, driver);

        /* Back: the newline clears the override; an empty write would not reach the kernel. */
        CHECK(sysfs_write("/sys/bus/pci/devices/" GPU "/driver_override", "\n") == 0, "clear driver_override");
        read_line("/sys/bus/pci/devices/" GPU "/driver_override", buf, sizeof(buf));
        CHECK(strcmp(buf, "(null)\n") == 0, "a newline clears driver_override");
        CHECK(sysfs_write("/sys/bus/pci/drivers/vfio-pci/unbind", GPU) == 0, "unbind from vfio-pci");
        CHECK(sysfs_write("/sys/bus/pci/drivers_probe", GPU) == 0, "drivers_probe");
        driver_of(GPU, buf, sizeof(buf));
        CHECK(strcmp(buf, "nouveau") == 0, "the host driver takes it back (%s)", buf);

        /* An override naming a driver that is not loaded: the probe succeeds and nothing binds. */
        CHECK(sysfs_write("/sys/bus/pci/devices/" AUDIO "/driver_override", "no-such-driver") == 0, "override");
        CHECK(sysfs_write("/sys/bus/pci/drivers/snd_hda_intel/unbind", AUDIO) == 0, "unbind audio");
        r = sysfs_write("/sys/bus/pci/drivers_probe", AUDIO);
        driver_of(AUDIO, buf, sizeof(buf));
        CHECK(r == 0 && strcmp(buf, "none") == 0, "probe succeeds without binding (%d, %s)", r, buf);
        r = sysfs_write("/sys/bus/pci/drivers_probe", "0000:99:00.0");
        CHECK(r == -ENODEV, "drivers_probe of an unknown address: ENODEV (%d)", r);

        drain(mon);
        /* Hot removal and a re-enumeration with another class: what a reflash looks like. */
        snprintf(ctl, sizeof(ctl), "%s ctl %s remove " GPU " >/dev/null", self, ctl_socket);
        CHECK(system(ctl) == 0, "ctl remove");
        CHECK(next_event(mon, GPU, action, sizeof(action), driver, sizeof(driver)) == 0 &&
              strcmp(action, "unbind") == 0, "unbind before remove (%s)", action);
        CHECK(next_event(mon, GPU, action, sizeof(action), driver, sizeof(driver)) == 0 &&
              strcmp(action, "remove") == 0, "remove uevent (%s)", action);
        CHECK(access("/sys/bus/pci/devices/" GPU, F_OK) < 0, "the device is gone from the bus");
        snprintf(ctl, sizeof(ctl), "%s ctl %s add " GPU " vendor=0x10de device=0x13f2 class=0x030200 "
                 "iommu_group=12 driver=nouveau >/dev/null", self, ctl_socket);
        CHECK(system(ctl) == 0, "ctl add");
        CHECK(next_event(mon, GPU, action, sizeof(action), driver, sizeof(driver)) == 0 &&
              strcmp(action, "add") == 0, "add uevent (%s)", action);
        CHECK(next_event(mon, GPU, action, sizeof(action), driver, sizeof(driver)) == 0 &&
              strcmp(action, "bind") == 0 && strcmp(driver, "nouveau") == 0, "bind to the native driver (%s)",
              driver);
        read_line("/sys/bus/pci/devices/" GPU "/class", buf, sizeof(buf));
        buf[strcspn(buf, "\n")] = '\0';
        CHECK(strcmp(buf, "0x030200") == 0, "the new class is visible (%s)", buf);

        udev_monitor_unref(mon);
        udev_unref(udev);
        printf("1..%d\n", checks);
        return failures ? 1 : 0;
}
