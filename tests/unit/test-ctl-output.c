/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpupassctl's JSON writer, tables and command-line parsers: the exact text scripts and operators read. */
#include <errno.h>

#include "ctl.h"
#include "ctl-json.h"
#include "ctl-table.h"
#include "tests.h"

/* Runs fill(j) into memory and returns the text (caller frees). */
static char *render(bool pretty, void (*fill)(JsonWriter *j)) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        JsonWriter j;

        ASSERT_TRUE(f);
        json_init(&j, f, pretty);
        fill(&j);
        json_finish(&j);
        fclose(f);
        return buf;
}

static void fill_nested(JsonWriter *j) {
        char *companions[] = { (char *) "0000:3b:00.1", NULL };

        json_begin_array(j);
        json_begin_object(j);
        json_kv_string(j, "Address", "0000:3b:00.0");
        json_kv_int(j, "IommuGroup", -1);
        json_kv_uint(j, "MemoryMiB", 18446744073709551615ULL);
        json_kv_bool(j, "BootVga", false);
        json_key(j, "Companions");
        json_strv(j, companions);
        json_key(j, "Empty");
        json_strv(j, NULL);
        json_end_object(j);
        json_begin_object(j);
        json_end_object(j);
        json_end_array(j);
}

static void test_nesting(void) {
        char *s = render(false, fill_nested);

        ASSERT_STREQ(s, "[{\"Address\":\"0000:3b:00.0\",\"IommuGroup\":-1,\"MemoryMiB\":18446744073709551615,"
                        "\"BootVga\":false,\"Companions\":[\"0000:3b:00.1\"],\"Empty\":[]},{}]\n");
        free(s);
        s = render(true, fill_nested);
        ASSERT_STREQ(s, "[\n  {\n    \"Address\": \"0000:3b:00.0\",\n    \"IommuGroup\": -1,\n"
                        "    \"MemoryMiB\": 18446744073709551615,\n    \"BootVga\": false,\n"
                        "    \"Companions\": [\n      \"0000:3b:00.1\"\n    ],\n    \"Empty\": []\n  },\n  {}\n]\n");
        free(s);
}

static void fill_escapes(JsonWriter *j) {
        /* quote, backslash, newline, tab, a control byte, DEL, UTF-8 (é, €, 😀), then invalid bytes: a lone
         * continuation byte, an overlong '/', a truncated 3-byte sequence at the end. */
        json_string(j, "a\"b\\c\nd\te\x01" "f\x7f" "g \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \x80|\xc0\xaf|\xe2\x82");
}

static void test_escapes(void) {
        char *s = render(false, fill_escapes);

        ASSERT_STREQ(s, "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007fg \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \\ufffd|\\ufffd"
                        "\\ufffd|\\ufffd\\ufffd\"\n");
        free(s);
}

static void fill_split(JsonWriter *j) {
        json_begin_object(j);
        json_key(j, "Affinity");
        json_split(j, "alpha,,beta", ',');
        json_key(j, "Flags");
        json_split(j, "", ';');
        json_key(j, "Cut");
        json_split(j, "x\xe2\x82;y", ';'); /* a part ending in a cut sequence is escaped, not run on */
        json_end_object(j);
}

static void test_split(void) {
        char *s = render(false, fill_split);

        ASSERT_STREQ(s, "{\"Affinity\":[\"alpha\",\"beta\"],\"Flags\":[],\"Cut\":[\"x\\ufffd\\ufffd\",\"y\"]}\n");
        free(s);
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
