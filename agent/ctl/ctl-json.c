/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "ctl-json.h"

json_object *json_string_new(const char *s) {
        return json_object_new_string(strempty(s));
}

json_object *json_strv_new(char * const *l) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        for (; l && *l; l++)
                if (json_append(a, json_string_new(*l)) < 0)
                        return NULL;
        return TAKE_PTR(a);
}

json_object *json_split_new(const char *text, char sep) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        for (const char *p = text; p && *p;) {
                const char *end = strchr(p, sep);
                size_t len = end ? (size_t) (end - p) : strlen(p);

                if (len > 0 && json_append(a, json_object_new_string_len(p, (int) len)) < 0)
                        return NULL;
                p = end ? end + 1 : NULL;
        }
        return TAKE_PTR(a);
}

int json_add(json_object *o, const char *key, json_object *value) {
        if (!value)
                return -ENOMEM;
        if (json_object_object_add(o, key, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

int json_append(json_object *array, json_object *value) {
        if (!value)
                return -ENOMEM;
        if (json_object_array_add(array, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

const char *json_text(json_object *o, bool pretty) {
        /* json-c escapes '/' by default; a path or an XML element reads better without. */
        int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
                    (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN);

        return json_object_to_json_string_ext(o, flags);
}
