/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * What the aggregator accepts as a VM's specification, as pure functions over text and numbers (no bus,
 * no registry), so that the methods that take them (CreateVm, SetVmGpus, SetVmResources, SetVmAffinity)
 * refuse the same things with the same words, and tests/fuzz/fuzz-vm-spec can run them. Each returns 0,
 * or -EINVAL (-ENOENT for a host not in the cluster) with *ret_why saying in an operator's words what is
 * wrong (malloc'ed), or -ENOMEM.
 */

#define VM_MAX_VCPUS 4096
#define VM_MIN_MEMORY_MIB 64ULL
#define VM_MAX_MEMORY_MIB (64ULL * 1024 * 1024) /* 64 TiB */
#define VM_MAX_NAME 64
#define VM_MAX_GPU_REQUESTS 16 /* PLACEMENT_MAX_REQUESTS */
#define VM_MAX_GPUS_PER_REQUEST 64

/* 36 characters with dashes where a UUID has them (8-4-4-4-12). */
bool uuid_shaped(const char *s);

/* 1 to 64 letters, digits, '-', '_', '.', and not shaped like a UUID (VMs are named by UUID or name). */
int vm_name_check(const char *name, char **ret_why);

/* 1 to 4096 vCPUs, 64 MiB to 64 TiB. */
int vm_resources_check(uint32_t vcpus, uint64_t memory_mib, char **ret_why);

/* One GPU request as the registry's text has it: COUNT GPUs all of one of `models`, or (host set) the one
 * GPU at `address` on `host` (count 1, models NULL). */
struct gpu_request_spec {
        uint32_t count;
        char **models;
        char *host;
        char *address; /* as written: full or short */
};

/* The one parser of the request text of SetVmGpus: "COUNT:MODEL[|MODEL...]" or "=HOST/ADDRESS" items
 * separated by ';', at most 16, counts 1 to 64, non-empty model names, a PCI address after the host.
 * Every place that reads a VM's requests (placement, the checks against the view, reflash) goes through
 * it. ret may be NULL (only the check). */
int gpu_requests_parse(const char *text, struct gpu_request_spec **ret, size_t *ret_n, char **ret_why);
void gpu_request_specs_free(struct gpu_request_spec *specs, size_t n);
int gpu_requests_validate(const char *text, char **ret_why);
/* Whether any count request of text accepts model. */
bool gpu_requests_name_model(const char *text, const char *model);

/* The one GPU-address matcher: whether `given` (full "0000:3b:00.0" or short "3b:00.0", either case)
 * names the GPU at `full` (as an agent reports it). */
bool gpu_address_matches(const char *full, const char *given);

/* The affinity list of SetVmAffinity joined as the registry keeps it ("h1,h2"; empty: any host). Every
 * name must be a host of the cluster (is_host); a name given twice is kept once. */
int vm_affinity_join(char * const *hosts, bool (*is_host)(const char *name, void *userdata), void *userdata,
                     char **ret_joined, char **ret_why);
