/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/*
 * gpupassctl's tables: columns as wide as their widest cell (never narrower than the column's minimum,
 * so short tables look as they always did), numbers aligned right, the last column not padded.
 * Cells are copied; widths count UTF-8 code points.
 */
typedef struct TableColumn {
        const char *header;
        unsigned min_width;
        bool right; /* numbers */
} TableColumn;

#define TABLE_MAX_COLUMNS 16

typedef struct Table Table;

/* NULL on out of memory or more than TABLE_MAX_COLUMNS columns; columns must outlive the table. */
Table *table_new(const TableColumn *columns, size_t n_columns);
Table *table_free(Table *t);
/* One row: exactly n_columns strings. */
int table_add_row(Table *t, const char * const *cells);
size_t table_rows(const Table *t);
/* The header line when legend is true, then the rows. */
void table_print(const Table *t, FILE *f, bool legend);

static inline void table_freep(Table **t) {
        table_free(*t);
}
