/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "pci-address.h"
#include "pci-identity.h"

/*
 * The agent's state file: claims, the maintenance flag, the last identity seen per slot, pending reflash
 * reports and GPUs left unavailable by a failed reset. One text file, `$STATE_DIRECTORY/agent.state`, a
 * line per fact and a CRC-32 over all of them on the last line:
 *
 *   version 1
 *   maintenance 0
 *   claim 0000:3b:00.0 0f8fad5b-d9cb-469f-a165-70867728950e 1000 0
 *   identity 0000:3b:00.0 10de 13f2 10de 115e 030000 a1 - NVIDIA Tesla M60
 *   previous-model 0000:3b:00.0 NVIDIA Tesla M60.compute
 *   unavailable 0000:3b:00.0 reset failed: Input/output error
 *   checksum 1a2b3c4d
 *
 * claim: GPU address, VM, uid granted the /dev/vfio node ("-" for none), needs-reconfiguration flag.
 * identity: vendor device subsystem-vendor subsystem-device class revision (hex), serial (16 hex or "-"),
 * model (rest of the line). Written atomically (see write_file_atomic()); a file that does not parse or
 * whose checksum does not match is reported as corrupt (-EBADMSG), never half used.
 */
#define LEDGER_FILE "agent.state"

struct ledger_claim {
        char address[PCI_ADDRESS_MAX];
        char *vm;
        uid_t allowed_uid; /* (uid_t) -1: none */
        bool needs_reconfiguration;
};

struct ledger_identity {
        char address[PCI_ADDRESS_MAX];
        struct pci_identity identity;
        char *model;
};

struct ledger_note {
        char address[PCI_ADDRESS_MAX];
        char *text;
};

struct ledger {
        bool maintenance;
        struct ledger_claim *claims;
        size_t n_claims;
        struct ledger_identity *identities;
        size_t n_identities;
        struct ledger_note *previous_models;
        size_t n_previous_models;
        struct ledger_note *unavailable;
        size_t n_unavailable;
};

void ledger_done(struct ledger *l);

int ledger_add_claim(struct ledger *l, const char *address, const char *vm, uid_t allowed_uid,
                     bool needs_reconfiguration);
int ledger_add_identity(struct ledger *l, const char *address, const struct pci_identity *id, const char *model);
int ledger_add_previous_model(struct ledger *l, const char *address, const char *model);
int ledger_add_unavailable(struct ledger *l, const char *address, const char *reason);

const struct ledger_claim *ledger_find_claim(const struct ledger *l, const char *address);
const struct ledger_identity *ledger_find_identity(const struct ledger *l, const char *address);
/* The identity last seen with this serial number at any slot, or NULL. */
const struct ledger_identity *ledger_find_serial(const struct ledger *l, uint64_t serial);
const struct ledger_note *ledger_find_note(const struct ledger_note *notes, size_t n, const char *address);

/* Text form, with the checksum line. */
/* The checksum line's CRC-32 (IEEE 802.3, zlib's crc32()): detects a torn or bit-rotten state file. */
unsigned long ledger_checksum(const char *text, size_t len);
int ledger_serialize(const struct ledger *l, char **ret, size_t *ret_len);
/* Parses the text form. -EBADMSG for anything malformed, with *ret_line the first bad line (0: checksum). */
int ledger_parse(const char *text, size_t len, struct ledger *ret, unsigned *ret_line);

/* -ENOENT when there is no file yet (first start); -EBADMSG when corrupt. */
int ledger_load(const char *dir, struct ledger *ret, unsigned *ret_line);
int ledger_save(const char *dir, const struct ledger *l);

/* A VM is named by a UUID in its canonical text form (36 characters, lower or upper case hex). */
bool vm_uuid_is_valid(const char *s);
