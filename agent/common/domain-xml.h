/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libvirt domain XML, read and written with libxml2 (what libvirt itself uses), never pasted together as
 * text. Pure functions: no I/O, no logging. Shared by gpupass-libvirt-hook (which reads the XML libvirt
 * gives it) and the aggregator's libvirt runtime (which builds the XML it starts from an operator's template).
 *
 * Errors: 0 on success; -EBADMSG when the text is not well-formed XML, -EINVAL when it is XML but not a
 * usable domain (another root element, a UUID or PCI address libvirt would not accept, another VM's UUID),
 * -EEXIST when a template already has a <hostdev> for an address gpupass assigns itself, -ENOMEM. On the
 * first three *ret_message (when ret_message is not NULL) gets a sentence naming what is wrong, to be shown
 * to the operator as it is; it is the caller's to free.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "pci-address.h"

/* "0f8fad5b-d9cb-469f-a165-70867728950e" and its NUL. */
#define DOMAIN_UUID_MAX 37

/* One <hostdev mode='subsystem' type='pci'> of a domain. */
struct domain_hostdev {
        struct pci_address address;
        /* managed='yes': libvirt binds the device to vfio-pci and back itself. managed='no' and an absent
         * attribute (libvirt's default is 'no') leave the binding to someone else: gpupassd. */
        bool managed;
};

struct domain_xml_info {
        char *name;     /* the first <name>'s text; NULL when there is none */
        char *uuid;     /* the first <uuid>, canonical (lower case, with dashes); NULL when there is none */
        struct domain_hostdev *hostdevs; /* in document order; other hostdev types are not listed */
        size_t n_hostdevs;
};

struct domain_xml_info *domain_xml_info_free(struct domain_xml_info *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct domain_xml_info *, domain_xml_info_free);

/* Reads a domain XML: its name, UUID and PCI hostdevs. The root must be <domain>; a <uuid> or a hostdev
 * <address> that libvirt would refuse is -EINVAL. */
int domain_xml_parse(const char *xml, struct domain_xml_info **ret, char **ret_message);

/*
 * Checks an operator's template for a VM (the aggregator's SetVmDomainTemplate): well-formed XML, a
 * <domain> root, no <uuid> other than vm_uuid (absent is fine: gpupass sets it), no <hostdev> for any of
 * the n_assigned addresses gpupass itself assigns (its GPUs and companions: -EEXIST).
 */
int domain_xml_check_template(const char *xml, const char *vm_uuid, const struct pci_address *assigned,
                              size_t n_assigned, char **ret_message);

struct domain_xml_params {
        const char *type;       /* <domain type=...> when there is no template, or the template has none:
                                 * "kvm" or "qemu" for real hosts, "test" for libvirt's test driver */
        const char *name;
        const char *uuid;       /* the VM's UUID, any case */
        unsigned vcpus;         /* >= 1 */
        uint64_t memory_kib;    /* >= 1 */
        const struct pci_address *hostdevs; /* one managed='no' <hostdev> each, in this order */
        size_t n_hostdevs;
};

/*
 * The XML to start: the template (NULL: a minimal q35 domain that boots nothing) with <name>, <uuid>,
 * <vcpu> and <memory> (and <currentMemory> where the template has one) set from p, and one managed='no'
 * PCI <hostdev> per address appended to <devices>; everything else of the template is kept (comments
 * too). The template is checked first as domain_xml_check_template() does with p's UUID and hostdevs.
 * *ret_xml is the <domain> element without an XML declaration, indented.
 */
int domain_xml_build(const char *template_xml, const struct domain_xml_params *p, char **ret_xml,
                     char **ret_message);

/* A UUID as libvirt reads it (32 hex digits, dashes allowed between them) into the canonical form. */
int domain_uuid_normalize(const char *s, char ret[static DOMAIN_UUID_MAX]);
