/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpupassctl's JSON documents (json-c), tables and command-line parsers: the text scripts and operators read. */
#include <errno.h>

#include "ctl.h"
#include "ctl-json.h"
#include "ctl-table.h"
#include "tests.h"

/* A GPU row as `gpupassctl list --json` builds it, and an empty object after it. */
static json_object *nested_document(void) {
        char *companions[] = { (char *) "0000:3b:00.1", NULL };
        json_object *a = json_object_new_array(), *o = json_object_new_object();

        ASSERT_TRUE(a && o);
        ASSERT_EQ(json_append(a, o), 0);
        ASSERT_EQ(json_add_string(o, "Address", "0000:3b:00.0"), 0);
        ASSERT_EQ(json_add_int(o, "IommuGroup", -1), 0);
        ASSERT_EQ(json_add_uint(o, "MemoryMiB", 18446744073709551615ULL), 0);
        ASSERT_EQ(json_add_bool(o, "BootVga", false), 0);
        ASSERT_EQ(json_add_strv(o, "Companions", companions), 0);
        ASSERT_EQ(json_add_strv(o, "Empty", NULL), 0);
        ASSERT_EQ(json_append(a, json_object_new_object()), 0);
        return a;
}

/* --json=short is one line, --json=pretty indents by two spaces; members keep the order they were added in. */
static void test_nesting(void) {
        _cleanup_(json_object_putp) json_object *a = nested_document();

        ASSERT_STREQ(json_text(a, false),
                     "[{\"Address\":\"0000:3b:00.0\",\"IommuGroup\":-1,\"MemoryMiB\":18446744073709551615,"
                     "\"BootVga\":false,\"Companions\":[\"0000:3b:00.1\"],\"Empty\":[]},{}]");
        ASSERT_STREQ(json_text(a, true),
                     "[\n  {\n    \"Address\": \"0000:3b:00.0\",\n    \"IommuGroup\": -1,\n"
                     "    \"MemoryMiB\": 18446744073709551615,\n    \"BootVga\": false,\n"
                     "    \"Companions\": [\n      \"0000:3b:00.1\"\n    ],\n    \"Empty\": [\n    ]\n  },\n  {\n  }\n]");
}

static void test_escapes(void) {
        /* quote, backslash, newline, tab, a control byte, a slash (not escaped: paths and XML stay readable),
         * UTF-8 (é, €, 😀) as it is; a NULL string is "". */
        _cleanup_(json_object_putp) json_object *s = json_string_new("a\"b\\c\nd\te\x01" "f/g \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        _cleanup_(json_object_putp) json_object *empty = json_string_new(NULL);

        ASSERT_STREQ(json_text(s, false), "\"a\\\"b\\\\c\\nd\\te\\u0001f/g \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
        ASSERT_STREQ(json_text(empty, false), "\"\"");
}

static void test_split(void) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        ASSERT_TRUE(o);
        ASSERT_EQ(json_add(o, "Affinity", json_split_new("alpha,,beta", ',')), 0);
        ASSERT_EQ(json_add(o, "Flags", json_split_new("", ';')), 0);
        ASSERT_EQ(json_add(o, "None", json_split_new(NULL, ';')), 0);
        ASSERT_EQ(json_add(o, "Trailing", json_split_new("x;y;", ';')), 0);
        ASSERT_STREQ(json_text(o, false), "{\"Affinity\":[\"alpha\",\"beta\"],\"Flags\":[],\"None\":[],"
                                          "\"Trailing\":[\"x\",\"y\"]}");
        /* A value json-c could not allocate is an error, not a silent null. */
        ASSERT_EQ(json_add(o, "Lost", NULL), -ENOMEM);
        ASSERT_EQ(json_append(o, NULL), -ENOMEM);
}

static void test_sizes(void) {
        static const struct {
                const char *text;
                uint64_t mib;
        } good[] = {
                { "512", 512 },   { "512M", 512 }, { "512MiB", 512 }, { "8G", 8192 }, { "8gib", 8192 },
                { "1T", 1048576 }, { "2TiB", 2097152 },
        };
        static const char * const bad[] = { "", "0", "0G", "-1", "8GB", "1.5G", "G", "8 G", "8Gi", " 8",
                                            "99999999999999999999", "17592186044416T" };
        uint64_t mib;
        uint32_t vcpus;

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                ASSERT_EQ(parse_size_mib(good[i].text, &mib), 0);
                ASSERT_EQ(mib, good[i].mib);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                mib = 7;
                ASSERT_EQ(parse_size_mib(bad[i], &mib), -EINVAL);
                ASSERT_EQ(mib, 7); /* untouched on failure */
        }
        ASSERT_EQ(parse_vcpus("4", &vcpus), 0);
        ASSERT_EQ(vcpus, 4);
        ASSERT_EQ(parse_vcpus("0", &vcpus), -EINVAL);
        ASSERT_EQ(parse_vcpus("-2", &vcpus), -EINVAL);
        ASSERT_EQ(parse_vcpus("4x", &vcpus), -EINVAL);
        ASSERT_EQ(parse_vcpus("4294967296", &vcpus), -EINVAL);
}

static char *print_table(const Table *t, bool legend) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        ASSERT_TRUE(f);
        table_print(t, f, legend);
        fclose(f);
        return buf;
}

static void test_table(void) {
        static const TableColumn columns[] = { { "VM", 4, false }, { "VCPUS", 0, true }, { "GPUS", 6, false },
                                               { "FLAGS", 0, false } };
        Table *t = table_new(columns, 4);
        char *s;

        ASSERT_TRUE(t);
        ASSERT_EQ(table_add_row(t, (const char * const[]) { "a", "2", "1:M60", "-" }), 0);
        /* a wide cell widens its column for every row; UTF-8 counts by code point */
        ASSERT_EQ(table_add_row(t, (const char * const[]) { "b\xc3\xa9", "16", "2:NVIDIA Tesla T4", "x" }), 0);
        ASSERT_EQ(table_rows(t), 2);
        s = print_table(t, true);
        ASSERT_STREQ(s, "VM   VCPUS GPUS              FLAGS\n"
                        "a        2 1:M60             -\n"
                        "b\xc3\xa9      16 2:NVIDIA Tesla T4 x\n");
        free(s);
        /* --no-legend: no header, and the header's width does not count */
        s = print_table(t, false);
        ASSERT_STREQ(s, "a     2 1:M60             -\n"
                        "b\xc3\xa9   16 2:NVIDIA Tesla T4 x\n");
        free(s);
        table_free(t);
        ASSERT_TRUE(table_new(columns, 0) == NULL);
}

int main(void) {
        test_table();
        test_nesting();
        test_escapes();
        test_split();
        test_sizes();
        return 0;
}
