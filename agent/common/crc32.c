/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "crc32.h"

uint32_t crc32_ieee(const void *data, size_t len) {
        const uint8_t *p = data;
        uint32_t crc = 0xffffffffu;

        /* Bitwise: the state file is a few KiB written on operator actions, not a hot path. */
        for (size_t i = 0; i < len; i++) {
                crc ^= p[i];
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1u));
        }
        return ~crc;
}
