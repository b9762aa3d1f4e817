/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/*
 * VMs by UUID in memory, for what the aggregator keeps per VM besides the registry's record (a reconcile
 * running, a PropertiesChanged held back): a hash table with chaining, so that a thousand VMs in flight
 * cost a lookup each, not a scan. Keys are the 36-character UUID text as the registry stores it; values
 * belong to the caller.
 */
struct vm_table;

int vm_table_new(struct vm_table **ret);
/* Frees the table, not the values (take them out with vm_table_steal_first first). */
struct vm_table *vm_table_free(struct vm_table *t);
void *vm_table_get(const struct vm_table *t, const char *uuid);
/* -EEXIST when the UUID has a value already, -ENOMEM. */
int vm_table_put(struct vm_table *t, const char *uuid, void *value);
/* The value removed, or NULL. */
void *vm_table_remove(struct vm_table *t, const char *uuid);
/* Any one value, removed (for emptying the table), or NULL when empty. */
void *vm_table_steal_first(struct vm_table *t);
size_t vm_table_size(const struct vm_table *t);
