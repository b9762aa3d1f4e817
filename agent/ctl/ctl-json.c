/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <string.h>

#include "ctl-json.h"

void json_init(JsonWriter *j, FILE *f, bool pretty) {
        *j = (JsonWriter) { .f = f, .pretty = pretty };
}

static void indent(JsonWriter *j) {
        if (!j->pretty)
                return;
        fputc('\n', j->f);
        for (unsigned i = 0; i < j->depth; i++)
                fputs("  ", j->f);
}

/* Before any value: the comma and the line break of an array element; nothing after a key. */
static void before_value(JsonWriter *j) {
        if (j->after_key) {
                j->after_key = false;
                return;
        }
        if (j->depth == 0)
                return;
        if (j->need_comma[j->depth])
                fputc(',', j->f);
        j->need_comma[j->depth] = true;
        indent(j);
}

static void container_open(JsonWriter *j, char c) {
        before_value(j);
        fputc(c, j->f);
        if (j->depth + 1 < JSON_MAX_DEPTH)
                j->depth++;
        j->need_comma[j->depth] = false;
}

static void container_close(JsonWriter *j, char c) {
        bool had_members = j->need_comma[j->depth];

        if (j->depth > 0)
                j->depth--;
        if (had_members)
                indent(j);
        fputc(c, j->f);
}

void json_begin_object(JsonWriter *j) {
        container_open(j, '{');
}
void json_end_object(JsonWriter *j) {
        container_close(j, '}');
}
void json_begin_array(JsonWriter *j) {
        container_open(j, '[');
}
void json_end_array(JsonWriter *j) {
        container_close(j, ']');
}

/* Length of the valid UTF-8 sequence at s, 0 if invalid (overlong forms, surrogates, > U+10FFFF too). */
static size_t utf8_valid_length(const unsigned char *s) {
        uint32_t cp;
        size_t n;

        if (s[0] < 0x80)
                return 1;
        if ((s[0] & 0xe0) == 0xc0)
                n = 2, cp = s[0] & 0x1f;
        else if ((s[0] & 0xf0) == 0xe0)
                n = 3, cp = s[0] & 0x0f;
        else if ((s[0] & 0xf8) == 0xf0)
                n = 4, cp = s[0] & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

/* The first len bytes of s, escaped; a sequence cut by len counts as invalid. */
static void write_escaped(FILE *f, const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s, *end = p + len;

        while (p < end) {
                size_t n;

                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f) {
                                fprintf(f, "\\u%04x", *p);
                                break;
                        }
                        n = utf8_valid_length(p);
                        if (n == 0 || n > (size_t) (end - p)) {
                                fputs("\\ufffd", f);
                                break;
                        }
                        fwrite(p, 1, n, f);
                        p += n;
                        continue;
                }
                p++;
        }
}

static void write_string(FILE *f, const char *s) {
        fputc('"', f);
        write_escaped(f, s ?: "", strlen(s ?: ""));
        fputc('"', f);
}

void json_key(JsonWriter *j, const char *key) {
        before_value(j);
        write_string(j->f, key);
        fputs(j->pretty ? ": " : ":", j->f);
        j->after_key = true;
}

void json_string(JsonWriter *j, const char *s) {
        before_value(j);
        write_string(j->f, s);
}

void json_uint(JsonWriter *j, uint64_t u) {
        before_value(j);
        fprintf(j->f, "%" PRIu64, u);
}

void json_int(JsonWriter *j, int64_t i) {
        before_value(j);
        fprintf(j->f, "%" PRIi64, i);
}

void json_bool(JsonWriter *j, bool b) {
        before_value(j);
        fputs(b ? "true" : "false", j->f);
}

void json_null(JsonWriter *j) {
        before_value(j);
        fputs("null", j->f);
}

void json_strv(JsonWriter *j, char * const *l) {
        json_begin_array(j);
        for (; l && *l; l++)
                json_string(j, *l);
        json_end_array(j);
}

void json_split(JsonWriter *j, const char *text, char sep) {
        json_begin_array(j);
        for (const char *p = text; p && *p;) {
                const char *end = strchr(p, sep);
                size_t len = end ? (size_t) (end - p) : strlen(p);

                if (len > 0) {
                        before_value(j);
                        fputc('"', j->f);
                        write_escaped(j->f, p, len);
                        fputc('"', j->f);
                }
                p = end ? end + 1 : NULL;
        }
        json_end_array(j);
}

void json_finish(JsonWriter *j) {
        fputc('\n', j->f);
        fflush(j->f);
}
