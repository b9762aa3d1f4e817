/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "macro.h"
#include "pci-access.h"
#include "pci-identity.h"
#include "tests.h"

static void check_model(const struct pci_identity *id, const char *vendor, const char *device, const char *expected) {
        _cleanup_free_ char *name = gpu_model_name(id, vendor, device);

        ASSERT_STREQ(name, expected);
}

static void test_model_name_rule(void) {
        struct pci_identity m60 = { .vendor_id = 0x10de, .device_id = 0x13f2, .class_code = 0x030000 };
        struct pci_identity m60c = { .vendor_id = 0x10de, .device_id = 0x13f2, .class_code = 0x030200 };
        struct pci_identity other = { .vendor_id = 0x1234, .device_id = 0x1111, .class_code = 0x038000 };
        struct pci_identity unknown = { .vendor_id = 0x10de, .device_id = 0xabcd, .class_code = 0x030000 };

        check_model(&m60, "NVIDIA Corporation", "GM204GL [Tesla M60]", "NVIDIA Tesla M60");
        check_model(&m60c, "NVIDIA Corporation", "GM204GL [Tesla M60]", "NVIDIA Tesla M60.compute");
        /* No bracket: the whole device name. Other vendors: pci.ids' name without its legal form. */
        check_model(&other, "Technical Corp.", "QEMU Virtual Video Controller", "Technical QEMU Virtual Video Controller");
        struct pci_identity qxl = { .vendor_id = 0x1b36, .device_id = 0x0100, .class_code = 0x030000 };
        check_model(&qxl, "Red Hat, Inc.", "QXL paravirtual graphic card", "Red Hat QXL paravirtual graphic card");
        check_model(&other, "Huawei Technologies Co., Ltd.", "Hi1710 [iBMC Intelligent Management chip]",
                    "Huawei iBMC Intelligent Management chip");
        check_model(&other, "Moore Threads Technology Co.,Ltd", "MTT S80", "Moore Threads MTT S80");
        check_model(&other, "XGI Technology Inc. (eXtreme Graphics Innovation)", "Volari Z7", "XGI Volari Z7");
        check_model(&other, "Silicon Integrated Systems [SiS]", "315PRO PCI/AGP VGA Display Adapter",
                    "SiS 315PRO PCI/AGP VGA Display Adapter");
        check_model(&other, "LG Electronics [Lucky Goldstar Co. Ltd]", "Display", "LG Display");
        check_model(&other, "Cirrus Logic", "GD 5446", "Cirrus Logic GD 5446");
        check_model(&other, "Inc.", "Card", "Inc. Card"); /* never an empty vendor */
        check_model(&unknown, "NVIDIA Corporation", NULL, "PCI 10de:abcd");
        unknown.class_code = 0x030200;
        check_model(&unknown, NULL, NULL, "PCI 10de:abcd.compute");
        /* Several brackets: the marketing name is the last. */
        struct pci_identity amd = { .vendor_id = 0x1002, .device_id = 0x687f, .class_code = 0x030000 };
        check_model(&amd, "Advanced Micro Devices, Inc. [AMD/ATI]", "Vega 10 XL/XT [Radeon RX Vega 56/64]",
                    "AMD Radeon RX Vega 56/64");
}

static void test_mode(void) {
        ASSERT_STREQ(gpu_mode_from_class(0x030000), "graphics");
        ASSERT_STREQ(gpu_mode_from_class(0x030200), "compute");
        ASSERT_STREQ(gpu_mode_from_class(0x038000), "display");
        ASSERT_STREQ(gpu_mode_from_class(0x030100), "display");
        ASSERT_TRUE(pci_class_is_display(0x030200));
        ASSERT_TRUE(!pci_class_is_display(0x040300));
        ASSERT_TRUE(pci_is_bridge(0x060400, 0));
        ASSERT_TRUE(pci_is_bridge(0x000000, 0x81));
        ASSERT_TRUE(!pci_is_bridge(0x030000, 0x80));
}

/* The names an operator sees come from the real pci.ids through libpci. */
static void test_names_from_pci_ids(void) {
        struct pci_identity m60 = { .vendor_id = 0x10de, .device_id = 0x13f2, .class_code = 0x030200 };
        struct pci_identity t4 = { .vendor_id = 0x10de, .device_id = 0x1eb8, .class_code = 0x030200 };
        struct pci_identity ast = { .vendor_id = 0x1a03, .device_id = 0x2000, .class_code = 0x030000 };
        struct pci_access *pacc = NULL;
        struct pci_identity qxl = { .vendor_id = 0x1b36, .device_id = 0x0100, .class_code = 0x030000 };
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        ASSERT_EQ(pci_access_open(&pacc), 0);
        a = pci_model_name(pacc, &m60);
        b = pci_model_name(pacc, &t4);
        c = pci_model_name(pacc, &ast);
        d = pci_model_name(pacc, &qxl);
        ASSERT_STREQ(a, "NVIDIA Tesla M60.compute");
        ASSERT_STREQ(b, "NVIDIA Tesla T4.compute");
        ASSERT_STREQ(c, "ASPEED Graphics Family");
        ASSERT_STREQ(d, "Red Hat QXL paravirtual graphic card");
        pci_access_close(pacc);
}

static void put_le32(uint8_t *p, uint32_t v) {
        p[0] = v & 0xff;
        p[1] = (v >> 8) & 0xff;
        p[2] = (v >> 16) & 0xff;
        p[3] = (v >> 24) & 0xff;
}

static void test_serial_capability(void) {
        uint8_t config[4096] = {};
        uint64_t serial = 0;
        char buf[PCI_SERIAL_MAX];

        /* AER at 0x100 -> DSN at 0x140. */
        put_le32(config + 0x100, 0x0001 | 1u << 16 | 0x140u << 20);
        put_le32(config + 0x140, 0x0003 | 1u << 16);
        put_le32(config + 0x144, 0x89abcdef);
        put_le32(config + 0x148, 0x01234567);
        ASSERT_EQ(pci_config_find_serial(config, sizeof(config), &serial), 1);
        ASSERT_TRUE(serial == 0x0123456789abcdefULL);
        pci_serial_format(serial, buf);
        ASSERT_STREQ(buf, "01-23-45-67-89-ab-cd-ef");

        /* Only the conventional 256 bytes readable (no root): no serial, no read past the image. */
        ASSERT_EQ(pci_config_find_serial(config, 256, &serial), 0);
        /* A list that loops back to itself terminates. */
        put_le32(config + 0x140, 0x0001 | 1u << 16 | 0x100u << 20);
        ASSERT_EQ(pci_config_find_serial(config, sizeof(config), &serial), 0);
        /* Misaligned or out-of-range next pointers stop the walk. */
        put_le32(config + 0x100, 0x0001 | 1u << 16 | 0xffeu << 20);
        ASSERT_EQ(pci_config_find_serial(config, sizeof(config), &serial), 0);
        put_le32(config + 0x100, 0x0001 | 1u << 16 | 0x042u << 20);
        ASSERT_EQ(pci_config_find_serial(config, sizeof(config), &serial), 0);
}

int main(void) {
        test_model_name_rule();
        test_mode();
        test_names_from_pci_ids();
        test_serial_capability();
        return 0;
}
