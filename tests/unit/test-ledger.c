/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "ledger.h"
#include "macro.h"
#include "tests.h"

#define VM1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define VM2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"

static void fill(struct ledger *l) {
        struct pci_identity m60 = { .vendor_id = 0x10de, .device_id = 0x13f2, .subsystem_vendor_id = 0x10de,
                                    .subsystem_device_id = 0x115e, .class_code = 0x030000, .revision = 0xa1 };
        struct pci_identity t4 = { .vendor_id = 0x10de, .device_id = 0x1eb8, .class_code = 0x030200,
                                   .has_serial = true, .serial = 0x0123456789abcdefULL };

        l->maintenance = true;
        ASSERT_EQ(ledger_add_claim(l, "0000:3b:00.0", VM1, (uid_t) -1, false), 0);
        ASSERT_EQ(ledger_add_claim(l, "3c:00.0", VM2, 1000, true), 0);
        ASSERT_EQ(ledger_add_identity(l, "0000:3b:00.0", &m60, "NVIDIA Tesla M60"), 0);
        ASSERT_EQ(ledger_add_identity(l, "0000:5e:00.0", &t4, "NVIDIA Tesla T4.compute"), 0);
        ASSERT_EQ(ledger_add_previous_model(l, "0000:3b:00.0", "NVIDIA Tesla M60.compute"), 0);
        ASSERT_EQ(ledger_add_unavailable(l, "0000:5e:00.0", "reset failed: Input/output error"), 0);
}

static void test_round_trip(void) {
        struct ledger a = {}, b = {};
        _cleanup_free_ char *text = NULL, *text2 = NULL;
        size_t len, len2;
        const struct ledger_claim *c;
        const struct ledger_identity *e;

        fill(&a);
        ASSERT_EQ(ledger_serialize(&a, &text, &len), 0);
        ASSERT_EQ(ledger_parse(text, len, &b, NULL), 0);
        ASSERT_TRUE(b.maintenance);
        ASSERT_EQ(b.n_claims, 2);
        c = ledger_find_claim(&b, "0000:3c:00.0");
        ASSERT_TRUE(c);
        ASSERT_STREQ(c->vm, VM2);
        ASSERT_EQ(c->allowed_uid, 1000);
        ASSERT_TRUE(c->needs_reconfiguration);
        ASSERT_EQ(ledger_find_claim(&b, "0000:3b:00.0")->allowed_uid, (uid_t) -1);
        e = ledger_find_serial(&b, 0x0123456789abcdefULL);
        ASSERT_TRUE(e);
        ASSERT_STREQ(e->address, "0000:5e:00.0");
        ASSERT_STREQ(e->model, "NVIDIA Tesla T4.compute");
        ASSERT_EQ(ledger_find_identity(&b, "0000:3b:00.0")->identity.revision, 0xa1);
        ASSERT_STREQ(ledger_find_note(b.previous_models, b.n_previous_models, "0000:3b:00.0")->text,
                     "NVIDIA Tesla M60.compute");
        ASSERT_STREQ(ledger_find_note(b.unavailable, b.n_unavailable, "0000:5e:00.0")->text,
                     "reset failed: Input/output error");
        /* Serialising what was parsed gives the same bytes. */
        ASSERT_EQ(ledger_serialize(&b, &text2, &len2), 0);
        ASSERT_EQ(len, len2);
        ASSERT_TRUE(memcmp(text, text2, len) == 0);
        ledger_done(&a);
        ledger_done(&b);
}

/* Every single-byte change and every truncation is detected: nothing half-read is ever used. */
static void test_corruption_detected(void) {
        struct ledger a = {}, b = {};
        _cleanup_free_ char *text = NULL;
        size_t len;

        fill(&a);
        ASSERT_EQ(ledger_serialize(&a, &text, &len), 0);
        for (size_t i = 0; i < len; i++) {
                char saved = text[i];

                text[i] ^= 0x01;
                if (ledger_parse(text, len, &b, NULL) != -EBADMSG) {
                        fprintf(stderr, "flipping byte %zu was not detected\n", i);
                        abort();
                }
                text[i] = saved;
        }
        for (size_t cut = 0; cut < len; cut++)
                ASSERT_EQ(ledger_parse(text, cut, &b, NULL), -EBADMSG);
        ledger_done(&a);
}

static void test_rejects_bad_entries(void) {
        struct ledger l = {};

        ASSERT_EQ(ledger_add_claim(&l, "0000:3b:00.0", "not-a-uuid", (uid_t) -1, false), -EINVAL);
        ASSERT_EQ(ledger_add_claim(&l, "0000:3b:00", VM1, (uid_t) -1, false), -EINVAL);
        ASSERT_EQ(ledger_add_claim(&l, "0000:3b:00.0", VM1, (uid_t) -1, false), 0);
        /* One owner per GPU, in the file as in memory. */
        ASSERT_EQ(ledger_add_claim(&l, "0000:3b:00.0", VM2, (uid_t) -1, false), -EEXIST);
        /* The same GPU written another way is the same GPU (found by tests/fuzz/fuzz-ledger: a file with
         * "0000:3B:00.0" and "3b:00.0" gave it two owners). */
        ASSERT_EQ(ledger_add_claim(&l, "0000:3B:00.0", VM2, (uid_t) -1, false), -EEXIST);
        ASSERT_EQ(ledger_add_claim(&l, "3b:00.0", VM2, (uid_t) -1, false), -EEXIST);
        ASSERT_EQ(ledger_add_previous_model(&l, "0000:3b:00.0", "NVIDIA Tesla M60"), 0);
        ASSERT_EQ(ledger_add_previous_model(&l, "0000:3B:00.0", "NVIDIA Tesla M60"), -EEXIST);
        ASSERT_EQ(ledger_add_previous_model(&l, "0000:3b:00.0", "two\nlines"), -EINVAL);
        ledger_done(&l);

        ASSERT_TRUE(vm_uuid_is_valid(VM1));
        ASSERT_TRUE(vm_uuid_is_valid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
        ASSERT_TRUE(!vm_uuid_is_valid("0f8fad5b-d9cb-469f-a165-70867728950"));
        ASSERT_TRUE(!vm_uuid_is_valid("0f8fad5bxd9cb-469f-a165-70867728950e"));
        ASSERT_TRUE(!vm_uuid_is_valid("0f8fad5b-d9cb-469f-a165-70867728950g"));
}

/* A state file written while the checksum came from the hand-written agent/common/crc32.c: it still
 * verifies, since zlib's crc32() is the same CRC-32 (IEEE 802.3, reflected 0xedb88320). */
static void test_earlier_file_verifies(void) {
        static const char text[] =
                "version 1\n"
                "maintenance 0\n"
                "claim 0000:3b:00.0 0f8fad5b-d9cb-469f-a165-70867728950e 1000 0\n"
                "claim 0000:3c:00.0 1f8fad5b-d9cb-469f-a165-70867728950e - 1\n"
                "identity 0000:3b:00.0 10de 13f2 10de 115e 030000 a1 - NVIDIA Tesla M60\n"
                "identity 0000:3c:00.0 1002 738c 1002 0c34 030200 01 0123456789abcdef AMD Instinct MI100.compute\n"
                "previous-model 0000:3b:00.0 NVIDIA Tesla M60.compute\n"
                "unavailable 0000:3c:00.0 reset failed: Input/output error\n"
                "checksum 874766f6\n";
        struct ledger l = {};

        ASSERT_EQ(ledger_checksum("123456789", 9), 0xcbf43926UL); /* the CRC-32 check value */
        ASSERT_EQ(ledger_parse(text, strlen(text), &l, NULL), 0);
        ASSERT_EQ(l.n_claims, 2);
        ASSERT_EQ(ledger_find_claim(&l, "0000:3b:00.0")->allowed_uid, 1000);
        ledger_done(&l);
}

static void test_save_load(void) {
        char dir[] = "/tmp/test-ledger.XXXXXX";
        struct ledger a = {}, b = {};
        _cleanup_free_ char *path = NULL;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_EQ(ledger_load(dir, &b, NULL), -ENOENT);
        fill(&a);
        ASSERT_EQ(ledger_save(dir, &a), 0);
        ASSERT_EQ(ledger_load(dir, &b, NULL), 0);
        ASSERT_EQ(b.n_claims, 2);
        ledger_done(&b);
        /* A torn file (what a crash without the atomic rename could leave) is refused. */
        ASSERT_TRUE(asprintf(&path, "%s/%s", dir, LEDGER_FILE) > 0);
        ASSERT_EQ(truncate(path, 40), 0);
        ASSERT_EQ(ledger_load(dir, &b, NULL), -EBADMSG);
        ASSERT_EQ(unlink(path), 0);
        ASSERT_EQ(rmdir(dir), 0);
        ledger_done(&a);
}

int main(void) {
        test_round_trip();
        test_corruption_detected();
        test_rejects_bad_entries();
        test_earlier_file_verifies();
        test_save_load();
        return 0;
}
