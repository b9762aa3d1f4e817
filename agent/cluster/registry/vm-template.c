/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "macro.h"
#include "registry/vm-template.h"

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS vm_templates ("
        "  uuid TEXT PRIMARY KEY,"
        "  xml TEXT NOT NULL);"
        "CREATE TRIGGER IF NOT EXISTS vm_templates_of_deleted_vm AFTER DELETE ON vms BEGIN"
        "  DELETE FROM vm_templates WHERE uuid = old.uuid;"
        "END;";

static int errno_of(int rc) {
        return rc == SQLITE_NOMEM ? -ENOMEM : rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? -EBUSY : -EIO;
}

int vm_template_setup(sqlite3 *db) {
        int rc = sqlite3_exec(db, schema, NULL, NULL, NULL);

        return rc == SQLITE_OK ? 0 : errno_of(rc);
}

int vm_template_get(sqlite3 *db, const char *uuid, char **ret) {
        sqlite3_stmt *st = NULL;
        char *xml = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db, "SELECT xml FROM vm_templates WHERE uuid = ?", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                xml = strdup((const char *) sqlite3_column_text(st, 0) ?: "");
                rc = xml ? SQLITE_DONE : SQLITE_NOMEM;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return errno_of(rc);
        *ret = xml;
        return 0;
}

int vm_template_set(sqlite3 *db, const char *uuid, const char *xml) {
        bool remove = !xml || !*xml;
        sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db, remove ? "DELETE FROM vm_templates WHERE uuid = ?" :
                                "INSERT OR REPLACE INTO vm_templates (uuid, xml) VALUES (?, ?)", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK && !remove)
                rc = sqlite3_bind_text(st, 2, xml, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : errno_of(rc);
}
