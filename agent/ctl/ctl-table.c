/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-table.h"

struct Table {
        const TableColumn *columns;
        size_t n_columns, n_rows;
        char **cells; /* row-major */
};

Table *table_new(const TableColumn *columns, size_t n_columns) {
        Table *t;

        if (n_columns == 0 || n_columns > TABLE_MAX_COLUMNS)
                return NULL;
        t = calloc(1, sizeof(Table));
        if (!t)
                return NULL;
        t->columns = columns;
        t->n_columns = n_columns;
        return t;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add_row(Table *t, const char * const *cells) {
        char **grown = realloc(t->cells, (t->n_rows + 1) * t->n_columns * sizeof(char *));

        if (!grown)
                return -ENOMEM;
        t->cells = grown;
        for (size_t c = 0; c < t->n_columns; c++) {
                char *copy = strdup(cells[c] ?: "");

                if (!copy) {
                        while (c > 0)
                                free(t->cells[t->n_rows * t->n_columns + --c]);
                        return -ENOMEM;
                }
                t->cells[t->n_rows * t->n_columns + c] = copy;
        }
        t->n_rows++;
        return 0;
}

size_t table_rows(const Table *t) {
        return t->n_rows;
}

/* Code points, not bytes: model names and messages may carry UTF-8. */
static size_t text_width(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        n++;
        return n;
}

static void print_cell(FILE *f, const char *s, size_t width, bool right, bool last) {
        size_t pad = width > text_width(s) ? width - text_width(s) : 0;

        if (right)
                fprintf(f, "%*s", (int) pad, "");
        fputs(s, f);
        if (!right && !last)
                fprintf(f, "%*s", (int) pad, "");
}

void table_print(const Table *t, FILE *f, bool legend) {
        size_t width[TABLE_MAX_COLUMNS];

        for (size_t c = 0; c < t->n_columns; c++) {
                width[c] = t->columns[c].min_width;
                if (legend && text_width(t->columns[c].header) > width[c])
                        width[c] = text_width(t->columns[c].header);
                for (size_t r = 0; r < t->n_rows; r++)
                        if (text_width(t->cells[r * t->n_columns + c]) > width[c])
                                width[c] = text_width(t->cells[r * t->n_columns + c]);
        }
        for (size_t r = legend ? 0 : 1; r <= t->n_rows; r++) {
                for (size_t c = 0; c < t->n_columns; c++) {
                        const char *s = r == 0 ? t->columns[c].header : t->cells[(r - 1) * t->n_columns + c];

                        if (c > 0)
                                fputc(' ', f);
                        print_cell(f, s, width[c], t->columns[c].right, c + 1 == t->n_columns);
                }
                fputc('\n', f);
        }
}
