/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct sqlite3;

/*
 * The VM registry: SQLite in WAL mode under $STATE_DIRECTORY (vms.db). A VM is its UUID, a unique name,
 * vCPUs, memory, GPU requests, host affinity, power state, the host and GPUs it holds while on, and flags.
 * GPU requests are stored as text, one per ';': "COUNT:MODEL|MODEL" (COUNT GPUs, all of one of the models)
 * or "=HOST/ADDRESS" (one specific GPU). Every write is one transaction: a crash keeps the old or the new.
 */
struct vm_record {
        char uuid[37];
        char *name;
        uint32_t vcpus;
        uint64_t memory_mib;
        char *gpus;        /* request text, "" for none */
        char *affinity;    /* comma-separated host names, "" for any */
        bool on;
        char *host;        /* while on; when off, the last host it ran on */
        char *held;        /* comma-separated addresses held while on; when off, the last ones */
        char *flags;       /* e.g. "reconfigure:NVIDIA Tesla M60.compute", "" when none */
};

int vmstore_open(const char *dir, struct sqlite3 **ret);
void vmstore_close(struct sqlite3 *db);
void vm_record_done(struct vm_record *v);

/* -EEXIST for a duplicate name. */
int vmstore_insert(struct sqlite3 *db, const struct vm_record *v);
/* -ENOENT when unknown. */
int vmstore_update(struct sqlite3 *db, const struct vm_record *v);
int vmstore_delete(struct sqlite3 *db, const char *uuid);
/* By UUID or by name. -ENOENT when unknown. */
int vmstore_get(struct sqlite3 *db, const char *uuid_or_name, struct vm_record *ret);
/* By the exact UUID text, through the index (the bus objects, the hook). -ENOENT when unknown. */
int vmstore_get_by_uuid(struct sqlite3 *db, const char *uuid, struct vm_record *ret);
/* Calls f for each VM in name order; stops at the first negative return. */
int vmstore_foreach(struct sqlite3 *db, int (*f)(const struct vm_record *v, void *userdata), void *userdata);

/*
 * The one place that hears of every registry change: called after each successful insert (old NULL),
 * update and delete (new NULL), with the record before and after, so the aggregator's bus objects emit
 * exactly what changed whichever file made the change. One hook per process: the aggregator opens one
 * registry. NULL unsets it.
 */
typedef void (*vmstore_hook_t)(const struct vm_record *old, const struct vm_record *new, void *userdata);
void vmstore_set_hook(struct sqlite3 *db, vmstore_hook_t hook, void *userdata);

/* Flags are "key:value" items separated by ';': "reconfigure:MODEL" (the GPU changed identity; the VM does
 * not power on until its GPU configuration is redone), "restart:HOST" (powered off for the host's
 * maintenance; powered on again there when the host is back). */
/* The value of key, or NULL. */
char *vm_flag_get(const char *flags, const char *key);
/* Sets key to value (NULL removes it); *flags is replaced. */
int vm_flag_set(char **flags, const char *key, const char *value);
