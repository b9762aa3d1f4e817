/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

struct sqlite3;

/*
 * Each VM's optional libvirt domain XML template (SetVmDomainTemplate): its own table in the registry
 * (vms.db), one row per VM that has one, removed with the VM by a trigger, so the VM table and its
 * writers stay as they are. The template is checked before it is stored (domain-xml.h); here it is text.
 */

/* Once, after vmstore_open(): the table and the trigger. */
int vm_template_setup(struct sqlite3 *db);
/* The VM's template, or *ret NULL when it has none. */
int vm_template_get(struct sqlite3 *db, const char *uuid, char **ret);
/* Stores it (fsync'd as every registry write); NULL or "" removes it. */
int vm_template_set(struct sqlite3 *db, const char *uuid, const char *xml);
