/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

struct manager;

/* Makes vm the owner of every GPU in IOMMU group `group` and persists it; Busy if another VM owns one. */
int manager_record_claim(struct manager *m, int group, const char *vm, sd_bus_error *error);
