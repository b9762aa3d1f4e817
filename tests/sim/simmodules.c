/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The host's modules directory, for libkmod: /lib/modules/$(uname -r) in the testbed (the preload sends
 * the simulated processes there) with a modules.dep.bin that lists each module of the fixture's
 * `modules=` and a .ko per module. The .ko is not ELF: the emulator's finit_module() (simkernel.c) reads
 * the driver name from it. The index is kmod's format 2 (libkmod-index.c): a trie whose nodes are
 *   prefix (NUL-terminated; flag 0x80000000), first and last child character and a uint32 offset per child
 *   (0x20000000), a value count and (uint32 priority, NUL-terminated value) pairs (0x40000000),
 * after a header of magic 0xB007F457, version 0x00020001 and the root's offset, every number big-endian.
 * The flags are the high bits of the offset that points to the node.
 */
#include <arpa/inet.h>
#include <string.h>
#include <sys/utsname.h>

#include "simhost.h"

#define INDEX_MAGIC 0xB007F457u
#define INDEX_VERSION 0x00020001u
#define NODE_PREFIX 0x80000000u
#define NODE_VALUES 0x40000000u
#define NODE_CHILDS 0x20000000u

struct entry {
        const char *key;
        const char *value;
};

static void put_u32(GByteArray *out, uint32_t v) {
        v = htonl(v);
        g_byte_array_append(out, (const guint8 *) &v, sizeof(v));
}

static void put_u32_at(GByteArray *out, size_t at, uint32_t v) {
        v = htonl(v);
        memcpy(out->data + at, &v, sizeof(v));
}

/* Writes the node for entries[0..n) (sorted, distinct keys sharing key[0..depth)), children first; returns
 * its offset with the flags. */
static uint32_t write_node(GByteArray *out, const struct entry *entries, size_t n, size_t depth) {
        size_t end = depth, i = 0, value_index = SIZE_MAX;
        uint32_t children[256] = {}, flags = 0, offset;
        int first = -1, last = -1;

        /* The longest prefix all keys share from depth on. */
        for (;;) {
                char c = entries[0].key[end];
                bool same = c != '\0';

                for (size_t k = 1; k < n && same; k++)
                        same = entries[k].key[end] == c;
                if (!same)
                        break;
                end++;
        }
        if (entries[0].key[end] == '\0') {
                value_index = 0;
                i = 1;
        }
        while (i < n) {
                unsigned char c = (unsigned char) entries[i].key[end];
                size_t j = i;

                while (j < n && (unsigned char) entries[j].key[end] == c)
                        j++;
                children[c] = write_node(out, entries + i, j - i, end + 1);
                if (first < 0)
                        first = c;
                last = c;
                i = j;
        }

        offset = out->len;
        if (end > depth) {
                flags |= NODE_PREFIX;
                g_byte_array_append(out, (const guint8 *) entries[0].key + depth, end - depth);
                g_byte_array_append(out, (const guint8 *) "", 1);
        }
        if (first >= 0) {
                guint8 range[2] = { (guint8) first, (guint8) last };

                flags |= NODE_CHILDS;
                g_byte_array_append(out, range, 2);
                for (int c = first; c <= last; c++)
                        put_u32(out, children[c]);
        }
        if (value_index != SIZE_MAX) {
                flags |= NODE_VALUES;
                put_u32(out, 1);
                put_u32(out, 0);
                g_byte_array_append(out, (const guint8 *) entries[value_index].value,
                                    strlen(entries[value_index].value) + 1);
        }
        return offset | flags;
}

static int compare_entries(const void *a, const void *b) {
        return strcmp(((const struct entry *) a)->key, ((const struct entry *) b)->key);
}

/* A module name as the kernel and libkmod spell it: dashes are underscores. */
char *sim_module_name(const char *name) {
        char *s = g_strdup(name);

        g_strdelimit(s, "-", '_');
        return s;
}

int sim_write_modules(struct simhost *h, char **modules, char **error) {
        g_autoptr(GByteArray) index = g_byte_array_new();
        g_autoptr(GString) text = g_string_new(NULL);
        g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func(g_free);
        g_autofree struct entry *entries = NULL;
        g_autofree char *dir = NULL, *kernel_dir = NULL, *bin = NULL, *dep = NULL;
        struct utsname u;
        size_t n = g_strv_length(modules);

        if (n == 0)
                return 0;
        if (uname(&u) < 0) {
                *error = g_strdup_printf("uname: %s", g_strerror(errno));
                return -errno;
        }
        dir = sim_path(h, "/lib/modules/%s", u.release);
        kernel_dir = g_build_filename(dir, "kernel/sim", NULL);
        g_mkdir_with_parents(kernel_dir, 0755);

        entries = g_new0(struct entry, n);
        for (size_t i = 0; i < n; i++) {
                char *driver = g_strstrip(modules[i]);
                char *key = sim_module_name(driver), *value = g_strdup_printf("kernel/sim/%s.ko:", driver);
                g_autofree char *ko = g_strdup_printf("%s/%s.ko", kernel_dir, driver);
                g_autofree char *contents = g_strdup_printf("gpupass-simkernel module: driver=%s\n", driver);

                if (!*driver || strchr(driver, '/')) {
                        *error = g_strdup_printf("bad module name '%s'", driver);
                        g_free(key);
                        g_free(value);
                        return -EINVAL;
                }
                g_ptr_array_add(strings, key);
                g_ptr_array_add(strings, value);
                entries[i] = (struct entry) { key, value };
                g_string_append_printf(text, "%s\n", value);
                if (!g_file_set_contents(ko, contents, -1, NULL)) {
                        *error = g_strdup_printf("cannot write %s", ko);
                        return -EIO;
                }
        }
        qsort(entries, n, sizeof(*entries), compare_entries);
        for (size_t i = 1; i < n; i++)
                if (strcmp(entries[i].key, entries[i - 1].key) == 0) {
                        *error = g_strdup_printf("module %s listed twice", entries[i].key);
                        return -EINVAL;
                }

        put_u32(index, INDEX_MAGIC);
        put_u32(index, INDEX_VERSION);
        put_u32(index, 0);
        put_u32_at(index, 8, write_node(index, entries, n, 0));

        bin = g_build_filename(dir, "modules.dep.bin", NULL);
        dep = g_build_filename(dir, "modules.dep", NULL);
        if (!g_file_set_contents(bin, (const char *) index->data, index->len, NULL) ||
            !g_file_set_contents(dep, text->str, -1, NULL)) {
                *error = g_strdup_printf("cannot write %s", bin);
                return -EIO;
        }
        return 0;
}
