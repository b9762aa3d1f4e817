/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A VM's domain on the bus: SetVmDomainTemplate (the operator's libvirt domain XML: disks, network,
 * firmware) and GetVmDomainXml (the XML gpupass starts, for review). A template is checked before it is
 * stored: well-formed XML, a <domain>, no other VM's UUID, no <hostdev> of a GPU (or companion) gpupass
 * manages, since those gpupass adds itself; a refusal is InvalidArgument saying which, and the registry
 * keeps what it had.
 */
#include <errno.h>
#include <stdlib.h>

#include "bus/cluster-objects.h"
#include "clusterd.h"
#include "domain-xml.h"
#include "gpupass/bus-names.h"
#include "lifecycle/vm-runtime.h"
#include "log.h"
#include "macro.h"
#include "registry/vm-template.h"
#include "registry/vmstore.h"

static int method_set_vm_domain_template(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record v = {};
        _cleanup_free_ struct pci_address *managed = NULL;
        _cleanup_free_ char *message = NULL;
        const char *xml;
        size_t n = 0;
        int r;

        r = clusterd_vm_from_call(c, call, true, &v, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "s", &xml);
        if (r < 0)
                return r;
        if (*xml) {
                r = vm_runtime_managed_addresses(c, &managed, &n);
                if (r < 0)
                        return r;
                r = domain_xml_check_template(xml, v.uuid, managed, n, &message);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT,
                                                 "Domain template for VM %s refused: %s", v.name,
                                                 message ?: "not a usable libvirt domain");
        }
        r = vm_template_set(c->db, v.uuid, xml);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Writing the VM registry failed: %m");
        log_struct(LOG_INFO, NULL, v.uuid, NULL, "VM %s: domain template %s", v.name, *xml ? "set" : "removed");
        return sd_bus_reply_method_return(call, NULL);
}

static int method_get_vm_domain_xml(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record v = {};
        _cleanup_free_ char *xml = NULL, *message = NULL;
        int r;

        r = clusterd_vm_from_call(c, call, false, &v, error);
        if (r < 0)
                return r;
        r = vm_runtime_domain_xml(c, &v, NULL, &xml, &message);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                /* A template stored earlier that no longer fits (its VM got a GPU it names). */
                return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT, "VM %s: its domain cannot be built: %s",
                                         v.name, message ?: strerror(-r));
        return sd_bus_reply_method_return(call, "s", xml);
}

const sd_bus_vtable vm_runtime_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("SetVmDomainTemplate", SD_BUS_ARGS("s", vm, "s", xml), SD_BUS_NO_RESULT,
                                method_set_vm_domain_template, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVmDomainXml", SD_BUS_ARGS("s", vm), SD_BUS_RESULT("s", xml),
                                method_get_vm_domain_xml, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
