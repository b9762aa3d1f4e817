/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "macro.h"
#include "tests.h"
#include "registry/vmstore.h"

static struct vm_record record(const char *uuid, const char *name) {
        struct vm_record v = { .vcpus = 8, .memory_mib = 16384, .gpus = (char *) "2:NVIDIA Tesla M60",
                               .affinity = (char *) "", .host = (char *) "", .held = (char *) "",
                               .flags = (char *) "" };

        strcpy(v.uuid, uuid);
        v.name = (char *) name;
        return v;
}

static int count(const struct vm_record *v, void *userdata) {
        (*(int *) userdata)++;
        return 0;
}

static void test_store(void) {
        char dir[] = "/tmp/test-vmstore.XXXXXX", cmd[128];
        struct vm_record a = record("0f8fad5b-d9cb-469f-a165-70867728950e", "alpha");
        struct vm_record b = record("7c9e6679-7425-40de-944b-e07fc1f90ae7", "alpha");
        struct vm_record got = {};
        struct sqlite3 *db;
        int n = 0;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_EQ(vmstore_open(dir, &db), 0);
        ASSERT_EQ(vmstore_insert(db, &a), 0);
        ASSERT_EQ(vmstore_insert(db, &b), -EEXIST); /* names are unique */
        ASSERT_EQ(vmstore_get(db, "alpha", &got), 0);
        ASSERT_STREQ(got.uuid, a.uuid);
        ASSERT_STREQ(got.gpus, "2:NVIDIA Tesla M60");
        ASSERT_TRUE(got.power == VM_POWER_OFF && !got.desired_on);
        vm_record_done(&got);
        ASSERT_EQ(vmstore_get(db, "0F8FAD5B-D9CB-469F-A165-70867728950E", &got), 0); /* UUIDs in any case */
        vm_record_done(&got);
        a.power = VM_POWER_STARTING;
        a.desired_on = true;
        a.host = (char *) "node-1";
        a.held = (char *) "0000:3b:00.0,0000:3b:00.1";
        a.groups = (char *) "40,40";
        ASSERT_EQ(vmstore_update(db, &a), 0);
        vmstore_close(db);

        /* Reopened: what was committed is there. */
        ASSERT_EQ(vmstore_open(dir, &db), 0);
        ASSERT_EQ(vmstore_get(db, a.uuid, &got), 0);
        ASSERT_TRUE(got.power == VM_POWER_STARTING && got.desired_on); /* the assignment, before any claim */
        ASSERT_STREQ(got.host, "node-1");
        ASSERT_STREQ(got.groups, "40,40");
        {
                struct vm_assignment as;

                ASSERT_EQ(vm_assignment_parse(&got, &as), 0);
                ASSERT_EQ(as.n, 2);
                ASSERT_STREQ(as.addresses[1], "0000:3b:00.1");
                ASSERT_EQ(as.groups[1], 40);
                ASSERT_TRUE(vm_assignment_group_first(&as, 0) && !vm_assignment_group_first(&as, 1));
                vm_assignment_done(&as);
        }
        ASSERT_TRUE(vmstore_has_uuid(db, a.uuid) && !vmstore_has_uuid(db, "7c9e6679-7425-40de-944b-e07fc1f90ae7"));
        vm_record_done(&got);
        ASSERT_EQ(vmstore_foreach(db, count, &n), 0);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(vmstore_delete(db, a.uuid), 0);
        ASSERT_EQ(vmstore_delete(db, a.uuid), -ENOENT);
        ASSERT_EQ(vmstore_get(db, "alpha", &got), -ENOENT);
        ASSERT_EQ(vmstore_update(db, &a), -ENOENT);
        vmstore_close(db);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        ASSERT_EQ(system(cmd), 0);
}

static void test_flags(void) {
        char *flags = strdup(""), *v;

        ASSERT_EQ(vm_flag_set(&flags, "reconfigure", "NVIDIA Tesla M60.compute"), 0);
        ASSERT_EQ(vm_flag_set(&flags, "restart", "node-1"), 0);
        ASSERT_STREQ(flags, "reconfigure:NVIDIA Tesla M60.compute;restart:node-1");
        v = vm_flag_get(flags, "reconfigure");
        ASSERT_STREQ(v, "NVIDIA Tesla M60.compute");
        free(v);
        ASSERT_EQ(vm_flag_set(&flags, "reconfigure", NULL), 0);
        ASSERT_STREQ(flags, "restart:node-1");
        ASSERT_TRUE(vm_flag_get(flags, "reconfigure") == NULL);
        ASSERT_TRUE(vm_flag_get(flags, "restar") == NULL);
        ASSERT_EQ(vm_flag_set(&flags, "restart", "node-2"), 0);
        ASSERT_STREQ(flags, "restart:node-2");
        free(flags);
}

/* What the hook was told, last call. */
struct heard {
        int calls;
        bool had_old, had_new;
        char old_host[32], new_host[32], uuid[37];
        bool new_on;
};

static void hear(const struct vm_record *old, const struct vm_record *new, void *userdata) {
        struct heard *h = userdata;

        h->calls++;
        h->had_old = old;
        h->had_new = new;
        snprintf(h->old_host, sizeof(h->old_host), "%s", old ? old->host : "");
        snprintf(h->new_host, sizeof(h->new_host), "%s", new ? new->host : "");
        snprintf(h->uuid, sizeof(h->uuid), "%s", (new ?: old)->uuid);
        h->new_on = new && new->power == VM_POWER_ON;
}

/* The hook hears every committed write with the record before and after, and nothing that failed. */
static void test_hook(void) {
        char dir[] = "/tmp/test-vmstore.XXXXXX", cmd[128];
        struct vm_record a = record("0f8fad5b-d9cb-469f-a165-70867728950e", "alpha");
        struct vm_record dup = record("7c9e6679-7425-40de-944b-e07fc1f90ae7", "alpha");
        struct vm_record ghost = record("7c9e6679-7425-40de-944b-e07fc1f90ae8", "ghost");
        struct heard h = {};
        struct sqlite3 *db;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_EQ(vmstore_open(dir, &db), 0);
        vmstore_set_hook(db, hear, &h);
        ASSERT_EQ(vmstore_insert(db, &a), 0);
        ASSERT_EQ(h.calls, 1);
        ASSERT_TRUE(!h.had_old && h.had_new);
        ASSERT_STREQ(h.uuid, a.uuid);
        ASSERT_EQ(vmstore_insert(db, &dup), -EEXIST);
        ASSERT_EQ(h.calls, 1); /* refused: not heard */
        ASSERT_EQ(vmstore_update(db, &ghost), -ENOENT);
        ASSERT_EQ(h.calls, 1);
        a.power = VM_POWER_ON;
        a.host = (char *) "node-1";
        ASSERT_EQ(vmstore_update(db, &a), 0);
        ASSERT_EQ(h.calls, 2);
        ASSERT_TRUE(h.had_old && h.had_new && h.new_on);
        ASSERT_STREQ(h.old_host, ""); /* the record as it was before the write */
        ASSERT_STREQ(h.new_host, "node-1");
        ASSERT_EQ(vmstore_delete(db, a.uuid), 0);
        ASSERT_EQ(h.calls, 3);
        ASSERT_TRUE(h.had_old && !h.had_new);
        ASSERT_STREQ(h.old_host, "node-1");
        ASSERT_EQ(vmstore_delete(db, a.uuid), -ENOENT);
        ASSERT_EQ(h.calls, 3);
        vmstore_set_hook(db, NULL, NULL);
        ASSERT_EQ(vmstore_insert(db, &a), 0);
        ASSERT_EQ(h.calls, 3); /* unset */
        vmstore_close(db);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        ASSERT_EQ(system(cmd), 0);
}

static int statements(struct sqlite3 *db) {
        int n = 0;

        for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s))
                n++;
        return n;
}

/* The statements are prepared once and kept: calls reuse them (the set does not grow), and none is left
 * inside a read transaction (another connection can checkpoint the whole log: the WAL does not grow). */
static void test_statements_kept(void) {
        char dir[] = "/tmp/test-vmstore.XXXXXX", cmd[128], path[64];
        struct vm_record a = record("0f8fad5b-d9cb-469f-a165-70867728950e", "alpha");
        struct vm_record got = {};
        struct sqlite3 *db, *other;
        int kept = 0, log = -1, done = -1;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_EQ(vmstore_open(dir, &db), 0);
        ASSERT_EQ(vmstore_insert(db, &a), 0);
        for (int round = 0; round < 2; round++) {
                if (round == 1)
                        kept = statements(db);
                for (int i = 0; i < 50; i++) {
                        ASSERT_EQ(vmstore_begin(db), 0);
                        a.power = i % 2 ? VM_POWER_STARTING : VM_POWER_ON;
                        ASSERT_EQ((i % 2 ? vmstore_update : vmstore_update_lazy)(db, &a), 0);
                        ASSERT_EQ(vmstore_commit(db), 0);
                        ASSERT_EQ(vmstore_get(db, "alpha", &got), 0);
                        ASSERT_TRUE(got.power == a.power);
                        vm_record_done(&got);
                        ASSERT_EQ(vmstore_get(db, a.uuid, &got), 0);
                        vm_record_done(&got);
                        ASSERT_EQ(vmstore_get(db, "beta", &got), -ENOENT);
                        ASSERT_TRUE(vmstore_has_uuid(db, a.uuid));
                }
        }
        ASSERT_EQ(statements(db), kept);
        snprintf(path, sizeof(path), "%s/vms.db", dir);
        ASSERT_EQ(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(other, "SELECT count(*) FROM vms;", NULL, NULL, NULL), SQLITE_OK); /* opens the WAL */
        ASSERT_EQ(sqlite3_wal_checkpoint_v2(other, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done), SQLITE_OK);
        ASSERT_EQ(log, 0); /* the log emptied: no reader holds it */
        sqlite3_close(other);
        vmstore_close(db);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        ASSERT_EQ(system(cmd), 0);
}

int main(void) {
        test_flags();
        test_hook();
        test_store();
        test_statements_kept();
        return 0;
}
