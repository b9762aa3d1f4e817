/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "macro.h"
#include "pci-address.h"
#include "strv.h"
#include "registry/vm-spec.h"
#include "registry/vmstore.h"

static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS vms ("
        "  uuid TEXT PRIMARY KEY,"
        "  name TEXT NOT NULL UNIQUE,"
        "  vcpus INTEGER NOT NULL,"
        "  memory_mib INTEGER NOT NULL,"
        "  gpus TEXT NOT NULL DEFAULT '',"
        "  affinity TEXT NOT NULL DEFAULT '',"
        "  power TEXT NOT NULL DEFAULT 'off',"
        "  host TEXT NOT NULL DEFAULT '',"
        "  held TEXT NOT NULL DEFAULT '',"
        "  flags TEXT NOT NULL DEFAULT '');";

/* Registries written before the desired state and the assignment's groups existed: the columns are added,
 * and what was on is wanted on. */
static const char *const upgrades[][2] = {
        { "desired", "ALTER TABLE vms ADD COLUMN desired TEXT NOT NULL DEFAULT 'off';"
                     "UPDATE vms SET desired=power;" },
        { "groups", "ALTER TABLE vms ADD COLUMN groups TEXT NOT NULL DEFAULT '';" },
};

static const char *const power_names[] = {
        [VM_POWER_OFF] = "off",
        [VM_POWER_STARTING] = "starting",
        [VM_POWER_ON] = "on",
        [VM_POWER_STOPPING] = "stopping",
};

const char *vm_power_to_string(enum vm_power p) {
        return (size_t) p < ELEMENTSOF(power_names) ? power_names[p] : "off";
}

static enum vm_power vm_power_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(power_names); i++)
                if (strcmp(s, power_names[i]) == 0)
                        return (enum vm_power) i;
        return VM_POWER_OFF;
}

static struct {
        sqlite3 *db;
        vmstore_hook_t hook;
        void *userdata;
} change_hook;

void vmstore_set_hook(sqlite3 *db, vmstore_hook_t hook, void *userdata) {
        change_hook.db = hook ? db : NULL;
        change_hook.hook = hook;
        change_hook.userdata = userdata;
}

static bool hooked(sqlite3 *db) {
        return change_hook.hook && change_hook.db == db;
}

static int sqlite_to_errno(int rc) {
        switch (rc) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

/* A statement of the connection, prepared once and kept: SQLite lists a connection's statements
 * (sqlite3_next_stmt), so it is found again by its text; one in use (a foreach's, stepping) is not taken.
 * Parsing a statement costs several times what running it does (callgrind over poweron-bench: 3/4 of a
 * read). Each use ends with statement_done(); vmstore_close() finalizes them. */
static int statement(sqlite3 *db, const char *sql, sqlite3_stmt **ret) {
        for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s))
                if (!sqlite3_stmt_busy(s) && strcmp(sqlite3_sql(s), sql) == 0) {
                        *ret = s;
                        return SQLITE_OK;
                }
        return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL);
}

/* Reset for its next use: a statement left stepped keeps its read transaction open (WAL: the log cannot be
 * checkpointed past it), and its bindings point to the caller's strings. */
static void statement_done(sqlite3_stmt *s) {
        if (!s)
                return;
        (void) sqlite3_reset(s);
        (void) sqlite3_clear_bindings(s);
}

/* A statement without parameters or rows (BEGIN, COMMIT, a PRAGMA), run to its end. */
static int run_sql(sqlite3 *db, const char *sql) {
        sqlite3_stmt *s = NULL;
        int rc = statement(db, sql, &s);

        while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
                rc = SQLITE_OK;
        statement_done(s);
        return rc;
}

/* Whether the query (one parameter, key) returns a row. */
static bool query_has_row(sqlite3 *db, const char *sql, const char *key) {
        sqlite3_stmt *s = NULL;
        bool found = false;

        if (statement(db, sql, &s) == SQLITE_OK &&
            sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC) == SQLITE_OK)
                found = sqlite3_step(s) == SQLITE_ROW;
        statement_done(s);
        return found;
}

static bool has_column(sqlite3 *db, const char *name) {
        return query_has_row(db, "SELECT 1 FROM pragma_table_info('vms') WHERE name=?1", name);
}

int vmstore_open(const char *dir, sqlite3 **ret) {
        _cleanup_free_ char *path = NULL;
        sqlite3 *db = NULL;
        int rc;

        if (asprintf(&path, "%s/vms.db", dir) < 0)
                return -ENOMEM;
        rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, schema, NULL, NULL, NULL);
        for (size_t i = 0; rc == SQLITE_OK && i < ELEMENTSOF(upgrades); i++)
                if (!has_column(db, upgrades[i][0]))
                        rc = sqlite3_exec(db, upgrades[i][1], NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                vmstore_close(db);
                return sqlite_to_errno(rc);
        }
        *ret = db;
        return 0;
}

void vmstore_close(sqlite3 *db) {
        sqlite3_stmt *s;

        while (db && (s = sqlite3_next_stmt(db, NULL)))
                sqlite3_finalize(s);
        sqlite3_close(db);
}

void vm_record_done(struct vm_record *v) {
        free(v->name);
        free(v->gpus);
        free(v->affinity);
        free(v->host);
        free(v->held);
        free(v->groups);
        free(v->flags);
        *v = (struct vm_record) {};
}

static int bind_record(sqlite3_stmt *s, const struct vm_record *v) {
        int rc = sqlite3_bind_text(s, 1, v->uuid, -1, SQLITE_STATIC);

        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 2, v->name, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(s, 3, v->vcpus);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(s, 4, (sqlite3_int64) v->memory_mib);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 5, v->gpus ?: "", -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 6, v->affinity ?: "", -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 7, vm_power_to_string(v->power), -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 8, v->host ?: "", -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 9, v->held ?: "", -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 10, v->flags ?: "", -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 11, v->desired_on ? "on" : "off", -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 12, v->groups ?: "", -1, SQLITE_STATIC);
        return rc;
}

static int run_write(sqlite3 *db, const char *sql, const struct vm_record *v, bool require_change) {
        sqlite3_stmt *s = NULL;
        int rc;

        rc = statement(db, sql, &s);
        if (rc == SQLITE_OK)
                rc = bind_record(s, v);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(s);
        statement_done(s);
        if (rc != SQLITE_DONE)
                return sqlite_to_errno(rc);
        if (require_change && sqlite3_changes(db) == 0)
                return -ENOENT;
        return 0;
}

int vmstore_insert(sqlite3 *db, const struct vm_record *v) {
        int r = run_write(db,
                          "INSERT INTO vms (uuid, name, vcpus, memory_mib, gpus, affinity, power, host, held, flags, "
                          "desired, groups) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", v, false);

        if (r >= 0 && hooked(db))
                change_hook.hook(NULL, v, change_hook.userdata);
        return r;
}

int vmstore_begin(sqlite3 *db) {
        return sqlite_to_errno(run_sql(db, "BEGIN IMMEDIATE;"));
}

int vmstore_commit(sqlite3 *db) {
        int r = sqlite_to_errno(run_sql(db, "COMMIT;"));

        if (r < 0)
                (void) run_sql(db, "ROLLBACK;");
        return r;
}

int vmstore_update_lazy(sqlite3 *db, const struct vm_record *v) {
        int r;

        /* WAL with synchronous=NORMAL: the commit survives the process (SIGKILL), not a power loss. Inside
         * a transaction (vmstore_begin) SQLite refuses the change: that commit is synced anyway. */
        (void) run_sql(db, "PRAGMA synchronous=NORMAL;");
        r = vmstore_update(db, v);
        (void) run_sql(db, "PRAGMA synchronous=FULL;");
        return r;
}

int vmstore_update(sqlite3 *db, const struct vm_record *v) {
        _cleanup_(vm_record_done) struct vm_record old = {};
        bool have_old = hooked(db) && vmstore_get_by_uuid(db, v->uuid, &old) >= 0;
        int r = run_write(db,
                          "UPDATE vms SET name=?2, vcpus=?3, memory_mib=?4, gpus=?5, affinity=?6, power=?7, host=?8, "
                          "held=?9, flags=?10, desired=?11, groups=?12 WHERE uuid=?1", v, true);

        if (r >= 0 && hooked(db))
                change_hook.hook(have_old ? &old : NULL, v, change_hook.userdata);
        return r;
}

static int delete_row(sqlite3 *db, const char *uuid);

int vmstore_delete(sqlite3 *db, const char *uuid) {
        _cleanup_(vm_record_done) struct vm_record old = {};
        bool have_old = hooked(db) && vmstore_get_by_uuid(db, uuid, &old) >= 0;
        int r = delete_row(db, uuid);

        if (r >= 0 && have_old && hooked(db))
                change_hook.hook(&old, NULL, change_hook.userdata);
        return r;
}

static int delete_row(sqlite3 *db, const char *uuid) {
        sqlite3_stmt *s = NULL;
        int rc;

        rc = statement(db, "DELETE FROM vms WHERE uuid=?1", &s);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 1, uuid, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(s);
        statement_done(s);
        if (rc != SQLITE_DONE)
                return sqlite_to_errno(rc);
        return sqlite3_changes(db) > 0 ? 0 : -ENOENT;
}

static char *column_text(sqlite3_stmt *s, int i) {
        const unsigned char *t = sqlite3_column_text(s, i);

        return strdup(t ? (const char *) t : "");
}

static int read_row(sqlite3_stmt *s, struct vm_record *v) {
        *v = (struct vm_record) {};
        snprintf(v->uuid, sizeof(v->uuid), "%s", (const char *) sqlite3_column_text(s, 0));
        v->name = column_text(s, 1);
        v->vcpus = (uint32_t) sqlite3_column_int64(s, 2);
        v->memory_mib = (uint64_t) sqlite3_column_int64(s, 3);
        v->gpus = column_text(s, 4);
        v->affinity = column_text(s, 5);
        v->power = vm_power_from_string((const char *) sqlite3_column_text(s, 6));
        v->host = column_text(s, 7);
        v->held = column_text(s, 8);
        v->flags = column_text(s, 9);
        v->desired_on = strcmp((const char *) sqlite3_column_text(s, 10), "on") == 0;
        v->groups = column_text(s, 11);
        if (!v->name || !v->gpus || !v->affinity || !v->host || !v->held || !v->flags || !v->groups) {
                vm_record_done(v);
                return -ENOMEM;
        }
        return 0;
}

#define SELECT_COLUMNS \
        "SELECT uuid, name, vcpus, memory_mib, gpus, affinity, power, host, held, flags, desired, groups FROM vms "

static int get_where(sqlite3 *db, const char *sql, const char *key, struct vm_record *ret) {
        sqlite3_stmt *s = NULL;
        int rc, r;

        rc = statement(db, sql, &s);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                r = read_row(s, ret);
        else
                r = rc == SQLITE_DONE ? -ENOENT : sqlite_to_errno(rc);
        statement_done(s);
        return r;
}

#define BY_NAME SELECT_COLUMNS "WHERE name=?1"
#define BY_UUID SELECT_COLUMNS "WHERE uuid=?1"

int vmstore_get(sqlite3 *db, const char *uuid_or_name, struct vm_record *ret) {
        char lower[37];

        /* Each through its index (a case-insensitive match on uuid would scan the table): a name never
         * has the shape of a UUID (vm-spec.c), and UUIDs are stored in the lower case CreateVm writes. */
        if (!uuid_shaped(uuid_or_name))
                return get_where(db, BY_NAME, uuid_or_name, ret);
        for (size_t i = 0; i <= 36; i++)
                lower[i] = (char) tolower((unsigned char) uuid_or_name[i]);
        return get_where(db, BY_UUID, lower, ret);
}

int vmstore_get_by_uuid(sqlite3 *db, const char *uuid, struct vm_record *ret) {
        return get_where(db, BY_UUID, uuid, ret);
}

bool vmstore_has_uuid(sqlite3 *db, const char *uuid) {
        return query_has_row(db, "SELECT 1 FROM vms WHERE uuid=?1", uuid);
}

int vm_record_copy(const struct vm_record *v, struct vm_record *ret) {
        struct vm_record c = *v;

        c.name = strdup(v->name ?: "");
        c.gpus = strdup(v->gpus ?: "");
        c.affinity = strdup(v->affinity ?: "");
        c.host = strdup(v->host ?: "");
        c.held = strdup(v->held ?: "");
        c.groups = strdup(v->groups ?: "");
        c.flags = strdup(v->flags ?: "");
        if (!c.name || !c.gpus || !c.affinity || !c.host || !c.held || !c.groups || !c.flags) {
                vm_record_done(&c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int vmstore_foreach(sqlite3 *db, int (*f)(const struct vm_record *v, void *userdata), void *userdata) {
        sqlite3_stmt *s = NULL;
        int rc, r = 0;

        rc = sqlite3_prepare_v2(db, SELECT_COLUMNS "ORDER BY name", -1, &s, NULL);
        while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct vm_record v;

                r = read_row(s, &v);
                if (r >= 0)
                        r = f(&v, userdata);
                vm_record_done(&v);
                if (r < 0)
                        break;
                rc = SQLITE_OK;
        }
        sqlite3_finalize(s);
        if (r < 0)
                return r;
        return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : sqlite_to_errno(rc);
}

char *vm_flag_get(const char *flags, const char *key) {
        size_t klen = strlen(key);

        for (const char *p = flags; p && *p;) {
                const char *end = strchr(p, ';');
                size_t len = end ? (size_t) (end - p) : strlen(p);

                if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == ':')
                        return strndup(p + klen + 1, len - klen - 1);
                p = end ? end + 1 : NULL;
        }
        return NULL;
}

int vm_flag_set(char **flags, const char *key, const char *value) {
        size_t klen = strlen(key), n = 0;
        char *out = malloc(strlen(*flags ?: "") + klen + (value ? strlen(value) : 0) + 3);

        if (!out)
                return -ENOMEM;
        out[0] = '\0';
        for (const char *p = *flags; p && *p;) {
                const char *end = strchr(p, ';');
                size_t len = end ? (size_t) (end - p) : strlen(p);

                if (!(len > klen && strncmp(p, key, klen) == 0 && p[klen] == ':')) {
                        if (n)
                                out[n++] = ';';
                        memcpy(out + n, p, len);
                        n += len;
                        out[n] = '\0';
                }
                p = end ? end + 1 : NULL;
        }
        if (value)
                sprintf(out + n, "%s%s:%s", n ? ";" : "", key, value);
        free(*flags);
        *flags = out;
        return 0;
}

int vm_assignment_parse(const struct vm_record *v, struct vm_assignment *ret) {
        _cleanup_free_ char *held = strdup(v->held ?: ""), *groups = strdup(v->groups ?: "");
        struct vm_assignment a = {};
        char *s1 = NULL, *s2 = NULL, *g;

        if (!held || !groups)
                return -ENOMEM;
        g = strtok_r(groups, ",", &s2);
        for (char *x = strtok_r(held, ",", &s1); x; x = strtok_r(NULL, ",", &s1), g = strtok_r(NULL, ",", &s2)) {
                int *t = realloc(a.groups, sizeof(int) * (a.n + 1));

                if (t)
                        a.groups = t;
                if (!t || strv_extend(&a.addresses, x) < 0) {
                        vm_assignment_done(&a);
                        return -ENOMEM;
                }
                /* A record written before groups were kept: each GPU its own group. */
                a.groups[a.n++] = g ? atoi(g) : -1;
        }
        *ret = a;
        return 0;
}

void vm_assignment_done(struct vm_assignment *a) {
        strv_free(a->addresses);
        free(a->groups);
        *a = (struct vm_assignment) {};
}

bool vm_assignment_group_first(const struct vm_assignment *a, size_t i) {
        for (size_t k = 0; a->groups[i] >= 0 && k < i; k++)
                if (a->groups[k] == a->groups[i])
                        return false;
        return true;
}
