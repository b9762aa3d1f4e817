/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/vm-table.h"

#define BUCKETS 4096

struct entry {
        struct entry *next;
        char uuid[37];
        void *value;
};

struct vm_table {
        struct entry *buckets[BUCKETS];
        size_t n;
};

/* FNV-1a over the text: UUIDs are random, any mixing will do. */
static size_t bucket_of(const char *uuid) {
        uint32_t h = 2166136261u;

        for (const char *p = uuid; *p; p++)
                h = (h ^ (uint8_t) *p) * 16777619u;
        return h % BUCKETS;
}

int vm_table_new(struct vm_table **ret) {
        struct vm_table *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

struct vm_table *vm_table_free(struct vm_table *t) {
        while (t && vm_table_steal_first(t))
                ;
        free(t);
        return NULL;
}

static struct entry **find(const struct vm_table *t, const char *uuid) {
        struct entry **e = (struct entry **) &t->buckets[bucket_of(uuid)];

        while (*e && strcmp((*e)->uuid, uuid) != 0)
                e = &(*e)->next;
        return e;
}

void *vm_table_get(const struct vm_table *t, const char *uuid) {
        struct entry *e = *find(t, uuid);

        return e ? e->value : NULL;
}

int vm_table_put(struct vm_table *t, const char *uuid, void *value) {
        struct entry **slot = find(t, uuid), *e;

        if (*slot)
                return -EEXIST;
        if (strlen(uuid) >= sizeof(e->uuid))
                return -EINVAL;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        strcpy(e->uuid, uuid);
        e->value = value;
        *slot = e;
        t->n++;
        return 0;
}

void *vm_table_remove(struct vm_table *t, const char *uuid) {
        struct entry **slot = find(t, uuid), *e = *slot;
        void *value;

        if (!e)
                return NULL;
        *slot = e->next;
        value = e->value;
        free(e);
        t->n--;
        return value;
}

void *vm_table_steal_first(struct vm_table *t) {
        for (size_t i = 0; t->n > 0 && i < BUCKETS; i++)
                if (t->buckets[i])
                        return vm_table_remove(t, t->buckets[i]->uuid);
        return NULL;
}

size_t vm_table_size(const struct vm_table *t) {
        return t->n;
}
