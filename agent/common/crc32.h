/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE 802.3, as zlib computes it): detects a torn or bit-rotten state file. */
uint32_t crc32_ieee(const void *data, size_t len);
