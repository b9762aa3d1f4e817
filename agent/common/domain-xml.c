/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlstring.h>

#include "domain-xml.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDoc *, xmlFreeDoc);
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlChar *, xmlFree);
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlBuffer *, xmlBufferFree);

/* Sets *ret_message and returns error (or -ENOMEM when the message itself cannot be made). */
_printf_(3, 4)
static int fail(char **ret_message, int error, const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        if (!ret_message)
                return error;
        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        *ret_message = s;
        return error;
}

struct domain_xml_info *domain_xml_info_free(struct domain_xml_info *d) {
        if (!d)
                return NULL;
        free(d->name);
        free(d->uuid);
        free(d->hostdevs);
        free(d);
        return NULL;
}

/* libvirt's own leniency (virUUIDParse): surrounding whitespace, '-' or ' ' between digit pairs. */
int domain_uuid_normalize(const char *s, char ret[static DOMAIN_UUID_MAX]) {
        uint8_t bytes[16];
        const char *p = s;
        size_t i = 0;

        if (!s)
                return -EINVAL;
        while (isspace((unsigned char) *p))
                p++;
        while (i < sizeof(bytes)) {
                if (*p == '-' || *p == ' ') {
                        p++;
                        continue;
                }
                if (!isxdigit((unsigned char) p[0]) || !isxdigit((unsigned char) p[1]))
                        return -EINVAL;
                char pair[3] = { p[0], p[1], '\0' };
                bytes[i++] = (uint8_t) strtoul(pair, NULL, 16);
                p += 2;
        }
        while (*p)
                if (!isspace((unsigned char) *p++))
                        return -EINVAL;
        snprintf(ret, DOMAIN_UUID_MAX,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
                 bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
        return 0;
}

static bool is_element(const xmlNode *n, const char *name) {
        /* libvirt's own elements carry no namespace; <metadata> children do, and are not ours to read. */
        return n->type == XML_ELEMENT_NODE && !n->ns && xmlStrEqual(n->name, BAD_CAST name);
}

static xmlNode *child_element(xmlNode *parent, const char *name) {
        for (xmlNode *n = parent->children; n; n = n->next)
                if (is_element(n, name))
                        return n;
        return NULL;
}

static bool prop_equals(xmlNode *n, const char *name, const char *value) {
        _cleanup_(xmlFreep) xmlChar *v = xmlGetNoNsProp(n, BAD_CAST name);

        return v && xmlStrEqual(v, BAD_CAST value);
}

/* The parser's first error, as libvirt reports it (later ones are usually consequences of the first). */
struct first_error {
        int line;
        char *message;
};

static void record_first_error(void *userdata, xmlError *e) {
        xmlParserCtxt *ctxt = userdata;
        struct first_error *f = ctxt->_private;

        if (f->message || e->level < XML_ERR_ERROR || !e->message)
                return;
        f->line = e->line;
        f->message = strdup(e->message); /* NULL on ENOMEM: the caller then says less */
}

/* Well-formed XML with a <domain> root, or -EBADMSG/-EINVAL naming the problem. No network access and no
 * entity substitution: a template is the operator's text, not a reason to fetch or expand anything. */
static int read_doc(const char *xml, xmlDoc **ret, char **ret_message) {
        struct first_error first = {};
        xmlParserCtxt *ctxt;
        xmlDoc *doc;
        xmlNode *root;
        size_t len;

        if (!xml)
                return fail(ret_message, -EBADMSG, "not XML: no text");
        len = strlen(xml);
        if (len > INT_MAX)
                return fail(ret_message, -EBADMSG, "not XML: %zu bytes is too long", len);
        ctxt = xmlNewParserCtxt();
        if (!ctxt)
                return -ENOMEM;
        /* Errors come to record_first_error() only: never printed on stderr by the library. */
        ctxt->_private = &first;
        ctxt->sax->serror = record_first_error;
        doc = xmlCtxtReadMemory(ctxt, xml, (int) len, "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS);
        xmlFreeParserCtxt(ctxt);
        if (!doc) {
                int r;

                if (first.message) {
                        size_t n = strlen(first.message);

                        while (n > 0 && isspace((unsigned char) first.message[n - 1]))
                                n--;
                        r = fail(ret_message, -EBADMSG, "not well-formed XML: line %d: %.*s", first.line, (int) n,
                                 first.message);
                } else
                        r = fail(ret_message, -EBADMSG, "not well-formed XML");
                free(first.message);
                return r;
        }
        free(first.message);
        /* libvirt never writes one, and its entities would not survive writing the <domain> element back. */
        if (doc->intSubset || doc->extSubset) {
                xmlFreeDoc(doc);
                return fail(ret_message, -EINVAL, "the XML has a <!DOCTYPE>: a domain XML has none");
        }
        root = xmlDocGetRootElement(doc);
        if (!root || !is_element(root, "domain")) {
                int r = fail(ret_message, -EINVAL, "the root element is <%s%s%s>, not <domain>",
                             root && root->ns && root->ns->prefix ? (const char *) root->ns->prefix : "",
                             root && root->ns && root->ns->prefix ? ":" : "",
                             root ? (const char *) root->name : "");
                xmlFreeDoc(doc);
                return r;
        }
        *ret = doc;
        return 0;
}

/* An address attribute the way libvirt reads it (strtoul, base 0: "0x3b", "59" and "073" are one bus);
 * absent is 0, as in libvirt. */
static int read_address_attr(xmlNode *address, const char *name, unsigned max, unsigned *ret,
                             char **ret_message) {
        _cleanup_(xmlFreep) xmlChar *v = xmlGetNoNsProp(address, BAD_CAST name);
        unsigned long n;
        char *end;

        if (!v) {
                *ret = 0;
                return 0;
        }
        errno = 0;
        n = strtoul((const char *) v, &end, 0);
        if (errno != 0 || end == (char *) v || *end != '\0' || strchr((const char *) v, '-') || n > max)
                return fail(ret_message, -EINVAL, "a PCI <hostdev> has %s='%s': not a number up to 0x%x", name,
                            (const char *) v, max);
        *ret = (unsigned) n;
        return 0;
}

/* A <hostdev>: 1 with *ret filled for a PCI subsystem one, 0 for any other kind. */
static int read_hostdev(xmlNode *hostdev, struct domain_hostdev *ret, char **ret_message) {
        unsigned domain, bus, slot, function;
        xmlNode *source, *address;
        int r;

        if (!prop_equals(hostdev, "mode", "subsystem") || !prop_equals(hostdev, "type", "pci"))
                return 0;
        source = child_element(hostdev, "source");
        address = source ? child_element(source, "address") : NULL;
        if (!address)
                return fail(ret_message, -EINVAL, "a PCI <hostdev> has no <source><address>");
        if ((r = read_address_attr(address, "domain", 0xffff, &domain, ret_message)) < 0 ||
            (r = read_address_attr(address, "bus", 0xff, &bus, ret_message)) < 0 ||
            (r = read_address_attr(address, "slot", 0x1f, &slot, ret_message)) < 0 ||
            (r = read_address_attr(address, "function", 7, &function, ret_message)) < 0)
                return r;
        /* libvirt refuses 0000:00:00.x (virPCIDeviceAddressIsValid): the host bridge is never assigned. */
        if (domain == 0 && bus == 0 && slot == 0)
                return fail(ret_message, -EINVAL, "a PCI <hostdev> names %04x:%02x:%02x.%x, the host bridge's slot",
                            domain, bus, slot, function);
        *ret = (struct domain_hostdev) {
                .address = { .domain = (uint16_t) domain, .bus = (uint8_t) bus, .device = (uint8_t) slot,
                             .function = (uint8_t) function },
                .managed = prop_equals(hostdev, "managed", "yes"),
        };
        return 1;
}

/* The text of the first child element called name, as libvirt's string(./name[1]) reads it; NULL if none. */
static int read_child_text(xmlNode *root, const char *name, char **ret) {
        _cleanup_(xmlFreep) xmlChar *v = NULL;
        xmlNode *n = child_element(root, name);

        *ret = NULL;
        if (!n)
                return 0;
        v = xmlNodeGetContent(n);
        *ret = strdup(v ? (const char *) v : "");
        return *ret ? 0 : -ENOMEM;
}

static int read_info(xmlDoc *doc, struct domain_xml_info **ret, char **ret_message) {
        _cleanup_(domain_xml_info_freep) struct domain_xml_info *d = NULL;
        _cleanup_free_ char *uuid = NULL;
        xmlNode *root = xmlDocGetRootElement(doc);
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        r = read_child_text(root, "name", &d->name);
        if (r < 0)
                return r;
        r = read_child_text(root, "uuid", &uuid);
        if (r < 0)
                return r;
        if (uuid) {
                d->uuid = malloc(DOMAIN_UUID_MAX);
                if (!d->uuid)
                        return -ENOMEM;
                if (domain_uuid_normalize(uuid, d->uuid) < 0)
                        return fail(ret_message, -EINVAL, "<uuid>%s</uuid> is not a UUID", uuid);
        }
        for (xmlNode *devices = root->children; devices; devices = devices->next) {
                if (!is_element(devices, "devices"))
                        continue;
                for (xmlNode *n = devices->children; n; n = n->next) {
                        struct domain_hostdev h, *a;

                        if (!is_element(n, "hostdev"))
                                continue;
                        r = read_hostdev(n, &h, ret_message);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                continue;
                        a = reallocarray(d->hostdevs, d->n_hostdevs + 1, sizeof(*a));
                        if (!a)
                                return -ENOMEM;
                        d->hostdevs = a;
                        d->hostdevs[d->n_hostdevs++] = h;
                }
        }
        *ret = TAKE_PTR(d);
        return 0;
}

int domain_xml_parse(const char *xml, struct domain_xml_info **ret, char **ret_message) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        int r;

        r = read_doc(xml, &doc, ret_message);
        if (r < 0)
                return r;
        return read_info(doc, ret, ret_message);
}

static bool address_equal(const struct pci_address *a, const struct pci_address *b) {
        return a->domain == b->domain && a->bus == b->bus && a->device == b->device && a->function == b->function;
}

/* What a template must not contain, given the VM it is for and the addresses gpupass assigns. */
static int check_info(const struct domain_xml_info *d, const char *vm_uuid, const struct pci_address *assigned,
                      size_t n_assigned, char **ret_message) {
        char uuid[DOMAIN_UUID_MAX];

        if (domain_uuid_normalize(vm_uuid, uuid) < 0)
                return fail(ret_message, -EINVAL, "'%s' is not a VM UUID", vm_uuid ?: "");
        if (d->uuid && strcmp(d->uuid, uuid) != 0)
                return fail(ret_message, -EINVAL, "the template's <uuid> %s is not the VM's (%s): leave it out, "
                            "gpupass sets it", d->uuid, uuid);
        for (size_t i = 0; i < d->n_hostdevs; i++)
                for (size_t j = 0; j < n_assigned; j++)
                        if (address_equal(&d->hostdevs[i].address, &assigned[j])) {
                                char a[PCI_ADDRESS_MAX];

                                pci_address_format(&assigned[j], a);
                                return fail(ret_message, -EEXIST, "the template already has a <hostdev> for %s, "
                                            "which gpupass assigns to the VM itself: remove it", a);
                        }
        return 0;
}

int domain_xml_check_template(const char *xml, const char *vm_uuid, const struct pci_address *assigned,
                              size_t n_assigned, char **ret_message) {
        _cleanup_(domain_xml_info_freep) struct domain_xml_info *d = NULL;
        int r;

        r = domain_xml_parse(xml, &d, ret_message);
        if (r < 0)
                return r;
        return check_info(d, vm_uuid, assigned, n_assigned, ret_message);
}

/* Puts n into root after *after (first when *after is NULL), and makes it the next one's anchor. */
static void insert_after(xmlNode *root, xmlNode **after, xmlNode *n) {
        if (*after)
                xmlAddNextSibling(*after, n);
        else if (root->children)
                xmlAddPrevSibling(root->children, n);
        else
                xmlAddChild(root, n);
        *after = n;
}

/* The first <name> child of root holds exactly text (created after *after when absent; later duplicates
 * dropped, since libvirt reads only the first and the operator would read the wrong one). */
static int set_child_text(xmlNode *root, const char *name, const char *text, xmlNode **after, xmlNode **ret) {
        xmlNode *n = child_element(root, name), *t;

        if (n) {
                xmlNode *next;

                for (xmlNode *dup = n->next; dup; dup = next) {
                        next = dup->next;
                        if (is_element(dup, name)) {
                                xmlUnlinkNode(dup);
                                xmlFreeNode(dup);
                        }
                }
                xmlNodeSetContent(n, NULL);
                t = xmlNewDocText(root->doc, BAD_CAST text); /* raw text: escaped when written */
                if (!t)
                        return -ENOMEM;
                xmlAddChild(n, t);
                *after = n;
        } else {
                n = xmlNewDocRawNode(root->doc, NULL, BAD_CAST name, BAD_CAST text);
                if (!n)
                        return -ENOMEM;
                insert_after(root, after, n);
        }
        if (ret)
                *ret = n;
        return 0;
}

static int set_prop(xmlNode *n, const char *name, const char *value) {
        return xmlSetProp(n, BAD_CAST name, BAD_CAST value) ? 0 : -ENOMEM;
}

static int append_hostdev(xmlNode *devices, const struct pci_address *a) {
        xmlNode *hostdev, *source, *address;
        char v[8];
        int r;

        hostdev = xmlNewChild(devices, NULL, BAD_CAST "hostdev", NULL);
        if (!hostdev)
                return -ENOMEM;
        if ((r = set_prop(hostdev, "mode", "subsystem")) < 0 || (r = set_prop(hostdev, "type", "pci")) < 0 ||
            (r = set_prop(hostdev, "managed", "no")) < 0)
                return r;
        source = xmlNewChild(hostdev, NULL, BAD_CAST "source", NULL);
        address = source ? xmlNewChild(source, NULL, BAD_CAST "address", NULL) : NULL;
        if (!address)
                return -ENOMEM;
        /* The form libvirt itself writes. */
        snprintf(v, sizeof(v), "0x%04x", a->domain);
        if ((r = set_prop(address, "domain", v)) < 0)
                return r;
        snprintf(v, sizeof(v), "0x%02x", a->bus);
        if ((r = set_prop(address, "bus", v)) < 0)
                return r;
        snprintf(v, sizeof(v), "0x%02x", a->device);
        if ((r = set_prop(address, "slot", v)) < 0)
                return r;
        snprintf(v, sizeof(v), "0x%x", a->function);
        return set_prop(address, "function", v);
}

/* A q35 machine with no disk and no network: it starts, and boots nothing until the operator's template
 * gives it something. ACPI so that a shutdown request has somewhere to go. */
static int new_minimal_doc(const char *type, xmlDoc **ret) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        xmlNode *root, *os, *ostype, *features;
        int r;

        doc = xmlNewDoc(BAD_CAST "1.0");
        root = doc ? xmlNewDocNode(doc, NULL, BAD_CAST "domain", NULL) : NULL;
        if (!root)
                return -ENOMEM;
        xmlDocSetRootElement(doc, root);
        if ((r = set_prop(root, "type", type)) < 0)
                return r;
        os = xmlNewChild(root, NULL, BAD_CAST "os", NULL);
        ostype = os ? xmlNewTextChild(os, NULL, BAD_CAST "type", BAD_CAST "hvm") : NULL;
        if (!ostype)
                return -ENOMEM;
        if ((r = set_prop(ostype, "arch", "x86_64")) < 0 || (r = set_prop(ostype, "machine", "q35")) < 0)
                return r;
        features = xmlNewChild(root, NULL, BAD_CAST "features", NULL);
        if (!features || !xmlNewChild(features, NULL, BAD_CAST "acpi", NULL) ||
            !xmlNewChild(features, NULL, BAD_CAST "apic", NULL) || !xmlNewChild(root, NULL, BAD_CAST "devices", NULL))
                return -ENOMEM;
        *ret = TAKE_PTR(doc);
        return 0;
}

static int check_params(const struct domain_xml_params *p, bool need_type, char **ret_message) {
        if (need_type && (!p->type || !*p->type))
                return fail(ret_message, -EINVAL, "no domain type given (kvm, qemu or test)");
        if (!p->name || !*p->name)
                return fail(ret_message, -EINVAL, "no domain name given");
        /* Control characters cannot be written as XML 1.0 at all; libvirt would refuse what came out. */
        for (const char *c = p->name; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        return fail(ret_message, -EINVAL, "the domain name has a control character");
        if (!xmlCheckUTF8(BAD_CAST p->name))
                return fail(ret_message, -EINVAL, "the domain name is not UTF-8");
        if (p->vcpus < 1)
                return fail(ret_message, -EINVAL, "a domain needs at least one vCPU");
        if (p->memory_kib < 1)
                return fail(ret_message, -EINVAL, "a domain needs memory");
        return 0;
}

static int format_root(xmlDoc *doc, char **ret) {
        _cleanup_(xmlBufferFreep) xmlBuffer *b = xmlBufferCreate();
        char *s;

        if (!b)
                return -ENOMEM;
        if (xmlNodeDump(b, doc, xmlDocGetRootElement(doc), 0, 1) < 0)
                return -ENOMEM;
        if (asprintf(&s, "%s\n", (const char *) xmlBufferContent(b)) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int domain_xml_build(const char *template_xml, const struct domain_xml_params *p, char **ret_xml,
                     char **ret_message) {
        _cleanup_(domain_xml_info_freep) struct domain_xml_info *d = NULL;
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        char uuid[DOMAIN_UUID_MAX], number[24];
        xmlNode *root, *devices, *after = NULL, *vcpu, *memory, *current;
        int r;

        if (template_xml) {
                r = read_doc(template_xml, &doc, ret_message);
                if (r < 0)
                        return r;
                r = read_info(doc, &d, ret_message);
                if (r < 0)
                        return r;
                r = check_info(d, p->uuid, p->hostdevs, p->n_hostdevs, ret_message);
                if (r < 0)
                        return r;
        }
        root = doc ? xmlDocGetRootElement(doc) : NULL;
        r = check_params(p, !root || !xmlHasProp(root, BAD_CAST "type"), ret_message);
        if (r < 0)
                return r;
        if (domain_uuid_normalize(p->uuid, uuid) < 0)
                return fail(ret_message, -EINVAL, "'%s' is not a VM UUID", p->uuid ?: "");
        if (!doc) {
                r = new_minimal_doc(p->type, &doc);
                if (r < 0)
                        return r;
                root = xmlDocGetRootElement(doc);
        } else if (!xmlHasProp(root, BAD_CAST "type") && (r = set_prop(root, "type", p->type)) < 0)
                return r;

        if ((r = set_child_text(root, "name", p->name, &after, NULL)) < 0 ||
            (r = set_child_text(root, "uuid", uuid, &after, NULL)) < 0)
                return r;
        snprintf(number, sizeof(number), "%" PRIu64, p->memory_kib);
        if ((r = set_child_text(root, "memory", number, &after, &memory)) < 0 || (r = set_prop(memory, "unit", "KiB")) < 0)
                return r;
        /* A template's smaller balloon target would not be the memory the registry says; libvirt defaults
         * currentMemory to memory when absent, so only an existing one is set. */
        current = child_element(root, "currentMemory");
        if (current && ((r = set_child_text(root, "currentMemory", number, &after, NULL)) < 0 ||
                        (r = set_prop(current, "unit", "KiB")) < 0))
                return r;
        snprintf(number, sizeof(number), "%u", p->vcpus);
        if ((r = set_child_text(root, "vcpu", number, &after, &vcpu)) < 0)
                return r;
        /* current= could exceed the new count (libvirt refuses that); placement and cpuset are kept. */
        xmlUnsetProp(vcpu, BAD_CAST "current");

        /* The last <devices>, so that the VM's GPUs come after every hostdev of the template. */
        devices = NULL;
        for (xmlNode *n = root->children; n; n = n->next)
                if (is_element(n, "devices"))
                        devices = n;
        if (!devices && !(devices = xmlNewChild(root, NULL, BAD_CAST "devices", NULL)))
                return -ENOMEM;
        for (size_t i = 0; i < p->n_hostdevs; i++) {
                r = append_hostdev(devices, &p->hostdevs[i]);
                if (r < 0)
                        return r;
        }
        return format_root(doc, ret_xml);
}
