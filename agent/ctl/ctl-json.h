/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "macro.h"

/*
 * gpupassctl's --json documents are json-c objects: the verbs build them, json-c escapes and prints them.
 * These helpers add what the replies hold (a NULL string reads as "", a NULL list as []) and return
 * -ENOMEM when json-c could not allocate; each takes over the value it is given, also on failure.
 */
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

json_object *json_string_new(const char *s);
/* A NULL-terminated string array as a JSON array. */
json_object *json_strv_new(char * const *l);
/* SEP-separated text ("a,b") as a JSON array of its non-empty parts. */
json_object *json_split_new(const char *text, char sep);

/* Member KEY of object o := value (NULL: -ENOMEM). */
int json_add(json_object *o, const char *key, json_object *value);
int json_append(json_object *array, json_object *value);
static inline int json_add_string(json_object *o, const char *key, const char *s) {
        return json_add(o, key, json_string_new(s));
}
static inline int json_add_int(json_object *o, const char *key, int64_t i) {
        return json_add(o, key, json_object_new_int64(i));
}
static inline int json_add_uint(json_object *o, const char *key, uint64_t u) {
        return json_add(o, key, json_object_new_uint64(u));
}
static inline int json_add_bool(json_object *o, const char *key, bool b) {
        return json_add(o, key, json_object_new_boolean(b));
}
static inline int json_add_strv(json_object *o, const char *key, char * const *l) {
        return json_add(o, key, json_strv_new(l));
}

/* The document as text, without the final newline: one line, or two spaces of indentation per level. */
const char *json_text(json_object *o, bool pretty);
