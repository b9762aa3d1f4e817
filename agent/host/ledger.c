/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fileio.h"
#include "ledger.h"
#include "macro.h"

#define LEDGER_VERSION 1

void ledger_done(struct ledger *l) {
        for (size_t i = 0; i < l->n_claims; i++)
                free(l->claims[i].vm);
        for (size_t i = 0; i < l->n_identities; i++)
                free(l->identities[i].model);
        for (size_t i = 0; i < l->n_previous_models; i++)
                free(l->previous_models[i].text);
        for (size_t i = 0; i < l->n_unavailable; i++)
                free(l->unavailable[i].text);
        free(l->claims);
        free(l->identities);
        free(l->previous_models);
        free(l->unavailable);
        *l = (struct ledger) {};
}

bool vm_uuid_is_valid(const char *s) {
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!isxdigit((unsigned char) s[i]))
                        return false;
        }
        return true;
}

/* Text that goes to the end of a line must not contain one. */
static bool text_is_single_line(const char *s) {
        return s && *s && !strpbrk(s, "\n\r");
}

static int grow(void **array, size_t n, size_t size) {
        void *t = realloc(*array, size * (n + 1));

        if (!t)
                return -ENOMEM;
        *array = t;
        return 0;
}

int ledger_add_claim(struct ledger *l, const char *address, const char *vm, uid_t allowed_uid,
                     bool needs_reconfiguration) {
        char canonical[PCI_ADDRESS_MAX];
        struct ledger_claim *c;

        /* Duplicates are found by the canonical address: "0000:3B:00.0" and "3b:00.0" are one GPU. */
        if (pci_address_normalize(address, canonical) < 0 || !vm_uuid_is_valid(vm))
                return -EINVAL;
        if (ledger_find_claim(l, canonical))
                return -EEXIST;
        if (grow((void **) &l->claims, l->n_claims, sizeof(*l->claims)) < 0)
                return -ENOMEM;
        c = &l->claims[l->n_claims];
        *c = (struct ledger_claim) { .allowed_uid = allowed_uid, .needs_reconfiguration = needs_reconfiguration };
        memcpy(c->address, canonical, sizeof(canonical));
        c->vm = strdup(vm);
        if (!c->vm)
                return -ENOMEM;
        l->n_claims++;
        return 0;
}

int ledger_add_identity(struct ledger *l, const char *address, const struct pci_identity *id, const char *model) {
        char canonical[PCI_ADDRESS_MAX];
        struct ledger_identity *e;

        if (pci_address_normalize(address, canonical) < 0 || !text_is_single_line(model))
                return -EINVAL;
        if (ledger_find_identity(l, canonical))
                return -EEXIST;
        if (grow((void **) &l->identities, l->n_identities, sizeof(*l->identities)) < 0)
                return -ENOMEM;
        e = &l->identities[l->n_identities];
        *e = (struct ledger_identity) { .identity = *id };
        memcpy(e->address, canonical, sizeof(canonical));
        e->model = strdup(model);
        if (!e->model)
                return -ENOMEM;
        l->n_identities++;
        return 0;
}

static int add_note(struct ledger_note **notes, size_t *n, const char *address, const char *text) {
        char canonical[PCI_ADDRESS_MAX];
        struct ledger_note *e;

        if (pci_address_normalize(address, canonical) < 0 || !text_is_single_line(text))
                return -EINVAL;
        if (ledger_find_note(*notes, *n, canonical))
                return -EEXIST;
        if (grow((void **) notes, *n, sizeof(**notes)) < 0)
                return -ENOMEM;
        e = &(*notes)[*n];
        *e = (struct ledger_note) {};
        memcpy(e->address, canonical, sizeof(canonical));
        e->text = strdup(text);
        if (!e->text)
                return -ENOMEM;
        (*n)++;
        return 0;
}

int ledger_add_previous_model(struct ledger *l, const char *address, const char *model) {
        return add_note(&l->previous_models, &l->n_previous_models, address, model);
}

int ledger_add_unavailable(struct ledger *l, const char *address, const char *reason) {
        return add_note(&l->unavailable, &l->n_unavailable, address, reason);
}

const struct ledger_claim *ledger_find_claim(const struct ledger *l, const char *address) {
        for (size_t i = 0; i < l->n_claims; i++)
                if (strcmp(l->claims[i].address, address) == 0)
                        return &l->claims[i];
        return NULL;
}

const struct ledger_identity *ledger_find_identity(const struct ledger *l, const char *address) {
        for (size_t i = 0; i < l->n_identities; i++)
                if (strcmp(l->identities[i].address, address) == 0)
                        return &l->identities[i];
        return NULL;
}

const struct ledger_identity *ledger_find_serial(const struct ledger *l, uint64_t serial) {
        for (size_t i = 0; i < l->n_identities; i++)
                if (l->identities[i].identity.has_serial && l->identities[i].identity.serial == serial)
                        return &l->identities[i];
        return NULL;
}

const struct ledger_note *ledger_find_note(const struct ledger_note *notes, size_t n, const char *address) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(notes[i].address, address) == 0)
                        return &notes[i];
        return NULL;
}

/* A growing text buffer; on OOM it stays NULL and serialisation fails at the end. */
struct text {
        char *data;
        size_t len;
        bool failed;
};

static void _printf_(2, 3) text_append(struct text *t, const char *format, ...) {
        _cleanup_free_ char *line = NULL;
        va_list ap;
        char *n;
        int len;

        if (t->failed)
                return;
        va_start(ap, format);
        len = vasprintf(&line, format, ap);
        va_end(ap);
        if (len < 0) {
                t->failed = true;
                return;
        }
        n = realloc(t->data, t->len + (size_t) len + 1);
        if (!n) {
                t->failed = true;
                return;
        }
        memcpy(n + t->len, line, (size_t) len + 1);
        t->data = n;
        t->len += (size_t) len;
}

unsigned long ledger_checksum(const char *text, size_t len) {
        return crc32_z(crc32_z(0, Z_NULL, 0), (const Bytef *) text, len);
}

int ledger_serialize(const struct ledger *l, char **ret, size_t *ret_len) {
        struct text t = {};

        text_append(&t, "version %d\n", LEDGER_VERSION);
        text_append(&t, "maintenance %d\n", l->maintenance ? 1 : 0);
        for (size_t i = 0; i < l->n_claims; i++) {
                const struct ledger_claim *c = &l->claims[i];

                if (c->allowed_uid == (uid_t) -1)
                        text_append(&t, "claim %s %s - %d\n", c->address, c->vm, c->needs_reconfiguration);
                else
                        text_append(&t, "claim %s %s %u %d\n", c->address, c->vm, (unsigned) c->allowed_uid,
                                    c->needs_reconfiguration);
        }
        for (size_t i = 0; i < l->n_identities; i++) {
                const struct ledger_identity *e = &l->identities[i];
                const struct pci_identity *id = &e->identity;
                char serial[17] = "-";

                if (id->has_serial)
                        snprintf(serial, sizeof(serial), "%016" PRIx64, id->serial);
                text_append(&t, "identity %s %04x %04x %04x %04x %06x %02x %s %s\n", e->address, id->vendor_id,
                            id->device_id, id->subsystem_vendor_id, id->subsystem_device_id, id->class_code,
                            id->revision, serial, e->model);
        }
        for (size_t i = 0; i < l->n_previous_models; i++)
                text_append(&t, "previous-model %s %s\n", l->previous_models[i].address, l->previous_models[i].text);
        for (size_t i = 0; i < l->n_unavailable; i++)
                text_append(&t, "unavailable %s %s\n", l->unavailable[i].address, l->unavailable[i].text);
        if (!t.failed)
                text_append(&t, "checksum %08lx\n", ledger_checksum(t.data, t.len));
        if (t.failed) {
                free(t.data);
                return -ENOMEM;
        }
        *ret = t.data;
        *ret_len = t.len;
        return 0;
}

/* Splits off the next space-separated word of *p; NULL at the end of the line. */
static char *next_word(char **p) {
        char *w = *p, *end;

        if (!w || !*w)
                return NULL;
        end = strchr(w, ' ');
        if (end) {
                *end = '\0';
                *p = end + 1;
        } else
                *p = NULL;
        return *w ? w : NULL;
}

static int parse_hex_field(char **p, unsigned long long max, unsigned digits, unsigned long long *ret) {
        char *w = next_word(p), *end;

        if (!w || strlen(w) != digits)
                return -EBADMSG;
        for (const char *c = w; *c; c++)
                if (!isxdigit((unsigned char) *c))
                        return -EBADMSG;
        errno = 0;
        *ret = strtoull(w, &end, 16);
        if (errno || *end || *ret > max)
                return -EBADMSG;
        return 0;
}

static int parse_line(struct ledger *l, char *line, bool *seen_version) {
        char *p = line, *keyword = next_word(&p), *address, *w;
        unsigned long long v[7];
        int r;

        if (!keyword)
                return -EBADMSG;
        if (strcmp(keyword, "version") == 0) {
                w = next_word(&p);
                if (*seen_version || !streq_ptr(w, "1") || p)
                        return -EBADMSG;
                *seen_version = true;
                return 0;
        }
        if (!*seen_version)
                return -EBADMSG;
        if (strcmp(keyword, "maintenance") == 0) {
                w = next_word(&p);
                if (!w || p || (strcmp(w, "0") != 0 && strcmp(w, "1") != 0))
                        return -EBADMSG;
                l->maintenance = w[0] == '1';
                return 0;
        }
        address = next_word(&p);
        if (!address)
                return -EBADMSG;
        if (strcmp(keyword, "claim") == 0) {
                char *vm = next_word(&p), *uid = next_word(&p), *flag = next_word(&p);
                unsigned long long u = (unsigned long long) (uid_t) -1;

                if (!vm || !uid || !flag || p || (strcmp(flag, "0") != 0 && strcmp(flag, "1") != 0))
                        return -EBADMSG;
                if (strcmp(uid, "-") != 0 && (parse_unsigned(uid, (uid_t) -2, &u) < 0 || !isdigit((unsigned char) uid[0])))
                        return -EBADMSG;
                r = ledger_add_claim(l, address, vm, (uid_t) u, flag[0] == '1');
        } else if (strcmp(keyword, "identity") == 0) {
                static const struct {
                        unsigned long long max;
                        unsigned digits;
                } fields[] = { { 0xffff, 4 }, { 0xffff, 4 }, { 0xffff, 4 }, { 0xffff, 4 }, { 0xffffff, 6 }, { 0xff, 2 } };
                struct pci_identity id = {};
                char *serial;

                for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                        if (parse_hex_field(&p, fields[i].max, fields[i].digits, &v[i]) < 0)
                                return -EBADMSG;
                id.vendor_id = (uint16_t) v[0];
                id.device_id = (uint16_t) v[1];
                id.subsystem_vendor_id = (uint16_t) v[2];
                id.subsystem_device_id = (uint16_t) v[3];
                id.class_code = (uint32_t) v[4];
                id.revision = (uint8_t) v[5];
                serial = p;
                if (serial && strncmp(serial, "- ", 2) == 0)
                        p += 2;
                else {
                        if (parse_hex_field(&p, UINT64_MAX, 16, &v[6]) < 0)
                                return -EBADMSG;
                        id.has_serial = true;
                        id.serial = v[6];
                }
                if (!p)
                        return -EBADMSG;
                r = ledger_add_identity(l, address, &id, p);
        } else if (strcmp(keyword, "previous-model") == 0) {
                if (!p)
                        return -EBADMSG;
                r = ledger_add_previous_model(l, address, p);
        } else if (strcmp(keyword, "unavailable") == 0) {
                if (!p)
                        return -EBADMSG;
                r = ledger_add_unavailable(l, address, p);
        } else
                return -EBADMSG;
        if (r == -ENOMEM)
                return r;
        return r < 0 ? -EBADMSG : 0;
}

int ledger_parse(const char *text, size_t len, struct ledger *ret, unsigned *ret_line) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_(ledger_done) struct ledger l = {};
        const char *checksum_line;
        unsigned long long crc;
        bool seen_version = false;
        unsigned line_no = 0;
        char *p, *end;
        size_t body;
        int r;

        if (ret_line)
                *ret_line = 0;
        /* The checksum line is the last line and covers every byte before it. */
        if (len == 0 || text[len - 1] != '\n' || memchr(text, '\0', len))
                return -EBADMSG;
        checksum_line = NULL;
        for (size_t i = len - 1; i-- > 0;)
                if (text[i] == '\n') {
                        checksum_line = text + i + 1;
                        break;
                }
        if (!checksum_line)
                checksum_line = text;
        body = (size_t) (checksum_line - text);
        if (len - body != strlen("checksum 00000000\n") || strncmp(checksum_line, "checksum ", 9) != 0)
                return -EBADMSG;
        copy = strndup(checksum_line + 9, 8);
        if (!copy)
                return -ENOMEM;
        for (const char *c = copy; *c; c++)
                if (!isxdigit((unsigned char) *c))
                        return -EBADMSG;
        crc = strtoull(copy, NULL, 16);
        if (crc != ledger_checksum(text, body))
                return -EBADMSG;
        free(copy);

        copy = strndup(text, body);
        if (!copy)
                return -ENOMEM;
        for (p = copy; *p; p = end + 1) {
                end = strchr(p, '\n');
                *end = '\0';
                line_no++;
                r = parse_line(&l, p, &seen_version);
                if (r < 0) {
                        if (ret_line)
                                *ret_line = line_no;
                        return r;
                }
        }
        if (!seen_version)
                return -EBADMSG;
        *ret = l;
        l = (struct ledger) {}; /* handed over */
        return 0;
}

int ledger_load(const char *dir, struct ledger *ret, unsigned *ret_line) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t len;
        int r;

        if (asprintf(&path, "%s/%s", dir, LEDGER_FILE) < 0)
                return -ENOMEM;
        r = read_full_file(path, &text, &len);
        if (r < 0)
                return r;
        return ledger_parse(text, len, ret, ret_line);
}

int ledger_save(const char *dir, const struct ledger *l) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        r = ledger_serialize(l, &text, &len);
        if (r < 0)
                return r;
        return write_file_atomic(dir, LEDGER_FILE, text, len);
}
