/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* NULL-terminated string arrays; a NULL array is the empty array. */
size_t strv_length(char * const *l);
bool strv_contains(char * const *l, const char *s);
/* Appends s (taking ownership, also on failure); -ENOMEM on failure. */
int strv_consume(char ***l, char *s);
/* Appends a copy of s. */
int strv_extend(char ***l, const char *s);
void strv_sort(char **l);
bool strv_equal(char * const *a, char * const *b);
/* The items joined with sep ("" for an empty array); NULL on -ENOMEM. */
char *strv_join(char * const *l, const char *sep);
