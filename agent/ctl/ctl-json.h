/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * A small streaming JSON writer for gpupassctl's --json: objects and arrays nest, commas and
 * indentation are the writer's business, strings are escaped (quotes, backslashes, control characters;
 * UTF-8 passes through, since D-Bus strings are valid UTF-8, and invalid bytes become U+FFFD).
 */
#define JSON_MAX_DEPTH 16

typedef struct JsonWriter {
        FILE *f;
        bool pretty;
        unsigned depth;
        bool need_comma[JSON_MAX_DEPTH];
        bool after_key;
} JsonWriter;

void json_init(JsonWriter *j, FILE *f, bool pretty);
void json_begin_object(JsonWriter *j);
void json_end_object(JsonWriter *j);
void json_begin_array(JsonWriter *j);
void json_end_array(JsonWriter *j);
/* The next value is the member KEY of the current object. */
void json_key(JsonWriter *j, const char *key);
void json_string(JsonWriter *j, const char *s);
void json_uint(JsonWriter *j, uint64_t u);
void json_int(JsonWriter *j, int64_t i);
void json_bool(JsonWriter *j, bool b);
void json_null(JsonWriter *j);
/* A NULL-terminated string array as a JSON array. */
void json_strv(JsonWriter *j, char * const *l);
/* SEP-separated text ("a,b") as a JSON array of its non-empty parts. */
void json_split(JsonWriter *j, const char *text, char sep);
/* Ends the document with a newline. */
void json_finish(JsonWriter *j);

/* Members: key and value in one call. */
static inline void json_kv_string(JsonWriter *j, const char *k, const char *v) {
        json_key(j, k);
        json_string(j, v);
}
static inline void json_kv_uint(JsonWriter *j, const char *k, uint64_t v) {
        json_key(j, k);
        json_uint(j, v);
}
static inline void json_kv_int(JsonWriter *j, const char *k, int64_t v) {
        json_key(j, k);
        json_int(j, v);
}
static inline void json_kv_bool(JsonWriter *j, const char *k, bool v) {
        json_key(j, k);
        json_bool(j, v);
}
