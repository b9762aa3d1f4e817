/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include <systemd/sd-bus.h>

#include "macro.h"
#include "pci-address.h"
#include "tests.h"

static void test_parse_full_and_short(void) {
        struct pci_address a;
        char buf[PCI_ADDRESS_MAX];

        ASSERT_EQ(pci_address_parse("0000:3b:00.0", &a), 0);
        ASSERT_EQ(a.domain, 0);
        ASSERT_EQ(a.bus, 0x3b);
        ASSERT_EQ(a.device, 0);
        ASSERT_EQ(a.function, 0);
        pci_address_format(&a, buf);
        ASSERT_STREQ(buf, "0000:3b:00.0");

        /* Short form and upper case are accepted and come out canonical. */
        ASSERT_EQ(pci_address_normalize("3B:1f.7", buf), 0);
        ASSERT_STREQ(buf, "0000:3b:1f.7");
        ASSERT_EQ(pci_address_normalize("ABCD:ff:00.1", buf), 0);
        ASSERT_STREQ(buf, "abcd:ff:00.1");
}

static void test_parse_rejects(void) {
        static const char * const bad[] = {
                "", "0000:3b:00", "0000:3b:00.8", "0000:3b:20.0", "0000:3b:00.0 ", " 0000:3b:00.0",
                "000:3b:00.0", "00000:3b:00.0", "0000:3b:0.0", "0000:3g:00.0", "0000-3b-00.0", "0000:3b:00.0.0",
                "/sys/bus/pci/devices/0000:3b:00.0", "0000:3b:00.0\n", "x:y:z.w", "::.",
        };
        struct pci_address a;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (pci_address_parse(bad[i], &a) != -EINVAL) {
                        fprintf(stderr, "accepted bad address '%s'\n", bad[i]);
                        abort();
                }
        }
        ASSERT_EQ(pci_address_parse(NULL, &a), -EINVAL);
}

static void test_same_slot(void) {
        struct pci_address a, b, c;

        ASSERT_EQ(pci_address_parse("0000:3b:00.0", &a), 0);
        ASSERT_EQ(pci_address_parse("0000:3b:00.1", &b), 0);
        ASSERT_EQ(pci_address_parse("0000:3b:01.0", &c), 0);
        ASSERT_TRUE(pci_address_same_slot(&a, &b));
        ASSERT_TRUE(!pci_address_same_slot(&a, &c));
}

/* The object path of a GPU is its address, path-encoded; decoding gives the address back. */
static void test_object_path_round_trip(void) {
        _cleanup_free_ char *path = NULL, *decoded = NULL, *other = NULL;

        ASSERT_TRUE(sd_bus_path_encode("/org/gpupass/agent1/gpu", "0000:3b:00.0", &path) >= 0);
        ASSERT_STREQ(path, "/org/gpupass/agent1/gpu/_30000_3a3b_3a00_2e0");
        ASSERT_TRUE(sd_bus_path_decode(path, "/org/gpupass/agent1/gpu", &decoded) > 0);
        ASSERT_STREQ(decoded, "0000:3b:00.0");
        ASSERT_EQ(sd_bus_path_decode("/org/gpupass/agent1/other/x", "/org/gpupass/agent1/gpu", &other), 0);
}

int main(void) {
        test_parse_full_and_short();
        test_parse_rejects();
        test_same_slot();
        test_object_path_round_trip();
        return 0;
}
