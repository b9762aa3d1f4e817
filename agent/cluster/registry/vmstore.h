/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct sqlite3;

/*
 * The VM registry: SQLite in WAL mode under $STATE_DIRECTORY (vms.db), synchronous=FULL (each write is on
 * disk before it returns). A VM is its UUID, a unique name, vCPUs, memory, GPU requests, host affinity,
 * flags, and, the aggregator's desired state, its desired power and once placed its *assignment*: the host,
 * the GPUs and their IOMMU groups. The assignment is written before any Claim is sent, so that after a
 * crash at any point the record says where claims of the VM may be held (lifecycle/reconcile.c).
 * GPU requests are stored as text, one per ';': "COUNT:MODEL|MODEL" (COUNT GPUs, all of one of the models)
 * or "=HOST/ADDRESS" (one specific GPU). Every write is one transaction: a crash keeps the old or the new.
 */
/* Where a VM stands. Anything but off means: claims of the VM may be held at `host` for `groups`. */
enum vm_power {
        VM_POWER_OFF,      /* nothing held (host and held are the last placement) */
        VM_POWER_STARTING, /* assigned, its groups being claimed */
        VM_POWER_ON,       /* every group of the assignment claimed */
        VM_POWER_STOPPING, /* its groups being released */
};

struct vm_record {
        char uuid[37];
        char *name;
        uint32_t vcpus;
        uint64_t memory_mib;
        char *gpus;        /* request text, "" for none */
        char *affinity;    /* comma-separated host names, "" for any */
        bool desired_on;   /* what the operator wants */
        enum vm_power power;
        char *host;        /* the assignment; when off, the last host it ran on */
        char *held;        /* comma-separated GPU addresses of the assignment; when off, the last ones */
        char *groups;      /* the IOMMU group of each address of held, same order ("40,40,41"); "" when off */
        char *flags;       /* e.g. "reconfigure:NVIDIA Tesla M60.compute", "" when none */
};

/* The assignment of a record (held and groups) as arrays: addresses[i] is in IOMMU group groups[i] (-1:
 * none). The one parser of those two columns. */
struct vm_assignment {
        char **addresses;
        int *groups;
        size_t n;
};
int vm_assignment_parse(const struct vm_record *v, struct vm_assignment *ret);
void vm_assignment_done(struct vm_assignment *a);
/* Whether index i is the first of its group in the assignment (one Claim or Release per group). */
bool vm_assignment_group_first(const struct vm_assignment *a, size_t i);

/* "off", "starting", "on", "stopping": the Power property and ListVms show these. */
const char *vm_power_to_string(enum vm_power p);

int vmstore_open(const char *dir, struct sqlite3 **ret);
void vmstore_close(struct sqlite3 *db);
void vm_record_done(struct vm_record *v);

/* -EEXIST for a duplicate name. */
int vmstore_insert(struct sqlite3 *db, const struct vm_record *v);
/* -ENOENT when unknown. */
int vmstore_update(struct sqlite3 *db, const struct vm_record *v);
/* The same without waiting for the disk (no fsync): for a record that a crash may take back to the one
 * before without harm (the end of a transition the reconciler replays: on after starting, off after
 * stopping). */
int vmstore_update_lazy(struct sqlite3 *db, const struct vm_record *v);
int vmstore_delete(struct sqlite3 *db, const char *uuid);
/* Several writes, one commit (one fsync): the reconciler's queue starts its reconciles inside one. */
int vmstore_begin(struct sqlite3 *db);
int vmstore_commit(struct sqlite3 *db);
/* By UUID or by name. -ENOENT when unknown. */
int vmstore_get(struct sqlite3 *db, const char *uuid_or_name, struct vm_record *ret);
/* By the exact UUID text, through the index (the bus objects, the hook). -ENOENT when unknown. */
int vmstore_get_by_uuid(struct sqlite3 *db, const char *uuid, struct vm_record *ret);
/* Whether a VM of that exact UUID is in the registry (a claim's owner: ours, or foreign). */
bool vmstore_has_uuid(struct sqlite3 *db, const char *uuid);
/* A deep copy; -ENOMEM. */
int vm_record_copy(const struct vm_record *v, struct vm_record *ret);
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
