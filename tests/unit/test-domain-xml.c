/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "domain-xml.h"
#include "macro.h"
#include "tests.h"

#define VM "0f8fad5b-d9cb-469f-a165-70867728950e"
#define OTHER "7c9e6679-7425-40de-944b-e07fc1f90ae7"

/* What `virsh dumpxml` prints for a running domain (abridged), as the hook gets it on stdin. */
static const char libvirt_xml[] =
        "<domain type='kvm' id='3'>\n"
        "  <name>gpu-vm</name>\n"
        "  <uuid>0F8FAD5B-D9CB-469F-A165-70867728950E</uuid>\n"
        "  <memory unit='KiB'>65536</memory>\n"
        "  <devices>\n"
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
        "    <hostdev mode='subsystem' type='pci' managed='no'>\n"
        "      <driver name='vfio'/>\n"
        "      <source>\n"
        "        <address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>\n"
        "      </source>\n"
        "      <alias name='hostdev0'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0'/>\n"
        "    </hostdev>\n"
        "    <hostdev mode='subsystem' type='pci' managed='yes'>\n"
        "      <source><address domain='0' bus='59' slot='0' function='1'/></source>\n"
        "    </hostdev>\n"
        "    <hostdev mode='subsystem' type='usb' managed='no'>\n"
        "      <source><vendor id='0x1234'/><product id='0xbeef'/></source>\n"
        "    </hostdev>\n"
        "  </devices>\n"
        "  <devices>\n"
        "    <hostdev mode='subsystem' type='pci'>\n"
        "      <source><address bus='0x5e' slot='0x1f' function='07'/></source>\n"
        "    </hostdev>\n"
        "  </devices>\n"
        "</domain>\n";

static void test_parse(void) {
        _cleanup_(domain_xml_info_freep) struct domain_xml_info *d = NULL;
        char a[PCI_ADDRESS_MAX];

        ASSERT_EQ(domain_xml_parse(libvirt_xml, &d, NULL), 0);
        ASSERT_STREQ(d->name, "gpu-vm");
        ASSERT_STREQ(d->uuid, VM);
        /* PCI ones only, across both <devices>, hex, decimal and octal as libvirt reads them. */
        ASSERT_EQ(d->n_hostdevs, 3);
        pci_address_format(&d->hostdevs[0].address, a);
        ASSERT_STREQ(a, "0000:3b:00.0");
        ASSERT_TRUE(!d->hostdevs[0].managed);
        pci_address_format(&d->hostdevs[1].address, a);
        ASSERT_STREQ(a, "0000:3b:00.1");
        ASSERT_TRUE(d->hostdevs[1].managed);
        /* No managed attribute is libvirt's default, 'no'; an absent domain is 0. */
        pci_address_format(&d->hostdevs[2].address, a);
        ASSERT_STREQ(a, "0000:5e:1f.7");
        ASSERT_TRUE(!d->hostdevs[2].managed);
}

static void test_parse_minimal(void) {
        _cleanup_(domain_xml_info_freep) struct domain_xml_info *d = NULL;

        ASSERT_EQ(domain_xml_parse("<domain/>", &d, NULL), 0);
        ASSERT_TRUE(!d->name);
        ASSERT_TRUE(!d->uuid);
        ASSERT_EQ(d->n_hostdevs, 0);
}

/* Each bad input is refused with the expected code and a message containing the expected words. */
static void expect_parse_error(const char *xml, int error, const char *words) {
        struct domain_xml_info *d = NULL;
        _cleanup_free_ char *message = NULL;
        int r = domain_xml_parse(xml, &d, &message);

        if (r != error || !message || !strstr(message, words)) {
                fprintf(stderr, "%s: got %d '%s', expected %d with '%s'\n", xml ?: "(null)", r, message ?: "(none)",
                        error, words);
                abort();
        }
        ASSERT_TRUE(!d);
}

static void test_parse_errors(void) {
        expect_parse_error(NULL, -EBADMSG, "not XML");
        expect_parse_error("", -EBADMSG, "not well-formed XML");
        expect_parse_error("name=vm\nmemory=4G\n", -EBADMSG, "line 1: Start tag expected");
        expect_parse_error("<domain>\n<name>x</domain>", -EBADMSG, "line 2: Opening and ending tag mismatch: name");
        expect_parse_error("<domain></domain><domain/>", -EBADMSG, "Extra content");
        expect_parse_error("<!DOCTYPE domain [<!ENTITY n 'vm'>]><domain><name>&n;</name></domain>", -EINVAL,
                           "the XML has a <!DOCTYPE>");
        expect_parse_error("<network><name>x</name></network>", -EINVAL, "the root element is <network>, not <domain>");
        expect_parse_error("<l:domain xmlns:l='urn:x'/>", -EINVAL, "<l:domain>, not <domain>");
        expect_parse_error("<domain><uuid>0f8fad5b-d9cb-469f-a165</uuid></domain>", -EINVAL,
                           "<uuid>0f8fad5b-d9cb-469f-a165</uuid> is not a UUID");
        expect_parse_error("<domain><uuid>0f8fad5b-d9cb-469f-a165-70867728950eff</uuid></domain>", -EINVAL,
                           "is not a UUID");
        expect_parse_error("<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='0x100'/>"
                           "</source></hostdev></devices></domain>", -EINVAL, "bus='0x100': not a number up to 0xff");
        expect_parse_error("<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='1' "
                           "slot='32'/></source></hostdev></devices></domain>", -EINVAL, "slot='32'");
        expect_parse_error("<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='1' "
                           "function='-1'/></source></hostdev></devices></domain>", -EINVAL, "function='-1'");
        expect_parse_error("<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='x1'/>"
                           "</source></hostdev></devices></domain>", -EINVAL, "bus='x1'");
        expect_parse_error("<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='0x'/>"
                           "</source></hostdev></devices></domain>", -EINVAL, "bus='0x'");
        expect_parse_error("<domain><devices><hostdev mode='subsystem' type='pci'><source/></hostdev></devices>"
                           "</domain>", -EINVAL, "has no <source><address>");
        expect_parse_error("<domain><devices><hostdev mode='subsystem' type='pci'><source><address slot='0' "
                           "function='1'/></source></hostdev></devices></domain>", -EINVAL, "0000:00:00.1");
}

static void test_uuid(void) {
        char u[DOMAIN_UUID_MAX];

        ASSERT_EQ(domain_uuid_normalize(" 0F8FAD5BD9CB469FA16570867728950E\n", u), 0);
        ASSERT_STREQ(u, VM);
        ASSERT_EQ(domain_uuid_normalize("0f 8f-ad5b-d9cb-469f-a165-70867728950e", u), 0);
        ASSERT_STREQ(u, VM);
        ASSERT_EQ(domain_uuid_normalize("0f8fad5b-d9cb-469f-a165-70867728950", u), -EINVAL);
        ASSERT_EQ(domain_uuid_normalize("0f8fad5b-d9cb-469f-a165-70867728950e0", u), -EINVAL);
        ASSERT_EQ(domain_uuid_normalize("0f8fad5b-d9cb-469f-a165-70867728950g", u), -EINVAL);
        /* libvirt allows separators between digit pairs only. */
        ASSERT_EQ(domain_uuid_normalize("0-f8fad5b-d9cb-469f-a165-70867728950e", u), -EINVAL);
        ASSERT_EQ(domain_uuid_normalize("", u), -EINVAL);
        ASSERT_EQ(domain_uuid_normalize(NULL, u), -EINVAL);
}

static const char template_xml[] =
        "<domain type='kvm' xmlns:gp='urn:example:gpupass-test'>\n"
        "  <name>old-name</name>\n"
        "  <!-- the operator's note -->\n"
        "  <metadata><gp:owner>team-a</gp:owner></metadata>\n"
        "  <memory unit='GiB'>4</memory>\n"
        "  <currentMemory unit='GiB'>2</currentMemory>\n"
        "  <vcpu placement='static' current='8'>16</vcpu>\n"
        "  <os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type></os>\n"
        "  <devices>\n"
        "    <disk type='file' device='disk'><source file='/var/lib/images/vm.qcow2'/><target dev='vda' bus='virtio'/></disk>\n"
        "    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x81' slot='0x00' function='0x0'/></source></hostdev>\n"
        "  </devices>\n"
        "</domain>\n";

static void test_check_template(void) {
        const struct pci_address gpu = { .bus = 0x3b }, nic = { .bus = 0x81 };
        _cleanup_free_ char *m1 = NULL, *m2 = NULL, *m3 = NULL;

        ASSERT_EQ(domain_xml_check_template(template_xml, VM, &gpu, 1, NULL), 0);
        ASSERT_EQ(domain_xml_check_template("<domain><uuid>0F8FAD5BD9CB469FA16570867728950E</uuid></domain>", VM,
                                            NULL, 0, NULL), 0);
        /* A hostdev of its own (a NIC) is the operator's; one gpupass assigns is refused, naming it. */
        ASSERT_EQ(domain_xml_check_template(template_xml, VM, &nic, 1, &m1), -EEXIST);
        ASSERT_STREQ(m1, "the template already has a <hostdev> for 0000:81:00.0, which gpupass assigns to the VM "
                     "itself: remove it");
        ASSERT_EQ(domain_xml_check_template("<domain><uuid>" OTHER "</uuid></domain>", VM, NULL, 0, &m2), -EINVAL);
        ASSERT_STREQ(m2, "the template's <uuid> " OTHER " is not the VM's (" VM "): leave it out, gpupass sets it");
        ASSERT_EQ(domain_xml_check_template("<domain/>", "not-a-uuid", NULL, 0, &m3), -EINVAL);
        ASSERT_STREQ(m3, "'not-a-uuid' is not a VM UUID");
        ASSERT_EQ(domain_xml_check_template("<domain", VM, NULL, 0, NULL), -EBADMSG);
        ASSERT_EQ(domain_xml_check_template("<vm/>", VM, NULL, 0, NULL), -EINVAL);
}

static void test_build_minimal(void) {
        const struct pci_address gpus[] = { { .bus = 0x3b }, { .bus = 0x3b, .function = 1 } };
        const struct domain_xml_params p = {
                .type = "test", .name = "a&b<c>", .uuid = "0F8FAD5B-D9CB-469F-A165-70867728950E", .vcpus = 4,
                .memory_kib = 8388608, .hostdevs = gpus, .n_hostdevs = 2,
        };
        _cleanup_(domain_xml_info_freep) struct domain_xml_info *d = NULL;
        _cleanup_free_ char *xml = NULL;

        ASSERT_EQ(domain_xml_build(NULL, &p, &xml, NULL), 0);
        ASSERT_STREQ(xml,
                "<domain type=\"test\">\n"
                "  <name>a&amp;b&lt;c&gt;</name>\n"
                "  <uuid>" VM "</uuid>\n"
                "  <memory unit=\"KiB\">8388608</memory>\n"
                "  <vcpu>4</vcpu>\n"
                "  <os>\n"
                "    <type arch=\"x86_64\" machine=\"q35\">hvm</type>\n"
                "  </os>\n"
                "  <features>\n"
                "    <acpi/>\n"
                "    <apic/>\n"
                "  </features>\n"
                "  <devices>\n"
                "    <hostdev mode=\"subsystem\" type=\"pci\" managed=\"no\">\n"
                "      <source>\n"
                "        <address domain=\"0x0000\" bus=\"0x3b\" slot=\"0x00\" function=\"0x0\"/>\n"
                "      </source>\n"
                "    </hostdev>\n"
                "    <hostdev mode=\"subsystem\" type=\"pci\" managed=\"no\">\n"
                "      <source>\n"
                "        <address domain=\"0x0000\" bus=\"0x3b\" slot=\"0x00\" function=\"0x1\"/>\n"
                "      </source>\n"
                "    </hostdev>\n"
                "  </devices>\n"
                "</domain>\n");
        /* What it builds reads back as what was asked. */
        ASSERT_EQ(domain_xml_parse(xml, &d, NULL), 0);
        ASSERT_STREQ(d->name, "a&b<c>");
        ASSERT_STREQ(d->uuid, VM);
        ASSERT_EQ(d->n_hostdevs, 2);
        ASSERT_EQ(d->hostdevs[1].address.function, 1);
        ASSERT_TRUE(!d->hostdevs[0].managed && !d->hostdevs[1].managed);
}

static void test_build_template(void) {
        const struct pci_address gpu = { .domain = 1, .bus = 0x3b };
        const struct domain_xml_params p = {
                .type = "qemu", .name = "vm1", .uuid = VM, .vcpus = 2, .memory_kib = 1048576,
                .hostdevs = &gpu, .n_hostdevs = 1,
        };
        _cleanup_(domain_xml_info_freep) struct domain_xml_info *d = NULL;
        _cleanup_free_ char *xml = NULL, *bare = NULL;

        ASSERT_EQ(domain_xml_build(template_xml, &p, &xml, NULL), 0);
        /* The template's type, firmware, disk, metadata (its namespace) and comment are kept. */
        ASSERT_TRUE(strstr(xml, "<domain xmlns:gp=\"urn:example:gpupass-test\" type=\"kvm\">"));
        ASSERT_TRUE(strstr(xml, "<!-- the operator's note -->"));
        ASSERT_TRUE(strstr(xml, "<gp:owner>team-a</gp:owner>"));
        ASSERT_TRUE(strstr(xml, "<os firmware=\"efi\">"));
        ASSERT_TRUE(strstr(xml, "<source file=\"/var/lib/images/vm.qcow2\"/>"));
        /* Name, UUID, memory (in KiB, the balloon target too) and vCPUs are the registry's. */
        ASSERT_TRUE(strstr(xml, "<name>vm1</name>\n  <uuid>" VM "</uuid>\n"));
        ASSERT_TRUE(!strstr(xml, "old-name"));
        ASSERT_TRUE(strstr(xml, "<memory unit=\"KiB\">1048576</memory>"));
        ASSERT_TRUE(strstr(xml, "<currentMemory unit=\"KiB\">1048576</currentMemory>"));
        ASSERT_TRUE(strstr(xml, "<vcpu placement=\"static\">2</vcpu>"));
        ASSERT_EQ(domain_xml_parse(xml, &d, NULL), 0);
        ASSERT_EQ(d->n_hostdevs, 2);
        ASSERT_TRUE(d->hostdevs[0].managed); /* the operator's NIC, untouched */
        ASSERT_EQ(d->hostdevs[1].address.domain, 1);
        ASSERT_TRUE(!d->hostdevs[1].managed);

        /* A template without <devices> or a type gets them; duplicates of what gpupass sets are dropped. */
        ASSERT_EQ(domain_xml_build("<domain><name>a</name><name>b</name><vcpu>1</vcpu><vcpu>9</vcpu></domain>", &p,
                                   &bare, NULL), 0);
        ASSERT_STREQ(bare,
                "<domain type=\"qemu\">\n"
                "  <name>vm1</name>\n"
                "  <uuid>" VM "</uuid>\n"
                "  <memory unit=\"KiB\">1048576</memory>\n"
                "  <vcpu>2</vcpu>\n"
                "  <devices>\n"
                "    <hostdev mode=\"subsystem\" type=\"pci\" managed=\"no\">\n"
                "      <source>\n"
                "        <address domain=\"0x0001\" bus=\"0x3b\" slot=\"0x00\" function=\"0x0\"/>\n"
                "      </source>\n"
                "    </hostdev>\n"
                "  </devices>\n"
                "</domain>\n");
}

static void test_build_refusals(void) {
        const struct pci_address nic = { .bus = 0x81 };
        struct domain_xml_params p = { .type = "kvm", .name = "vm1", .uuid = VM, .vcpus = 1, .memory_kib = 1024 };
        _cleanup_free_ char *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL, *m5 = NULL;
        char *xml = NULL;

        ASSERT_EQ(domain_xml_build("<domain><uuid>" OTHER "</uuid></domain>", &p, &xml, &m1), -EINVAL);
        ASSERT_TRUE(strstr(m1, "is not the VM's"));
        ASSERT_EQ(domain_xml_build("not xml", &p, &xml, &m2), -EBADMSG);
        ASSERT_TRUE(strstr(m2, "not well-formed XML: line 1"));
        p.hostdevs = &nic;
        p.n_hostdevs = 1;
        ASSERT_EQ(domain_xml_build(template_xml, &p, &xml, &m3), -EEXIST);
        ASSERT_TRUE(strstr(m3, "0000:81:00.0"));
        p.n_hostdevs = 0;
        p.vcpus = 0;
        ASSERT_EQ(domain_xml_build(NULL, &p, &xml, &m4), -EINVAL);
        ASSERT_STREQ(m4, "a domain needs at least one vCPU");
        p.vcpus = 1;
        p.type = NULL;
        ASSERT_EQ(domain_xml_build(NULL, &p, &xml, &m5), -EINVAL);
        ASSERT_STREQ(m5, "no domain type given (kvm, qemu or test)");
        p.type = "kvm";
        p.name = "vm\n1";
        ASSERT_EQ(domain_xml_build(NULL, &p, &xml, NULL), -EINVAL);
        p.name = "vm\xff";
        ASSERT_EQ(domain_xml_build(NULL, &p, &xml, NULL), -EINVAL);
        ASSERT_TRUE(!xml);
}

int main(void) {
        test_parse();
        test_parse_minimal();
        test_parse_errors();
        test_uuid();
        test_check_template();
        test_build_minimal();
        test_build_template();
        test_build_refusals();
        return 0;
}
