/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/* The host's size as the kernel reports it in sysfs, which the aggregator places VMs against. */

/* Online CPUs: /sys/devices/system/cpu/online (a list like "0-3,8,10-11"). */
int capacity_cpus(uint32_t *ret);
/* Online memory in MiB, as lsmem counts it: block_size_bytes times the online blocks of
 * /sys/devices/system/memory. -ENOENT on a kernel without memory blocks (no memory hotplug). */
int capacity_memory_mib(uint64_t *ret);
/* Counts the CPUs of a kernel CPU list ("0-3,8"); -EINVAL when it is not one. */
int cpu_list_count(const char *list, uint32_t *ret);
