/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small, exact file helpers for sysfs. Sysfs attributes are written with exactly one write(2) of the
 * whole value (the kernel's store function sees one buffer), never through stdio, which may split or
 * retry writes and hides the errno the kernel returned.
 */

#include <stddef.h>

/* Reads the first line of a small file without its newline. -ENOENT if missing. */
int read_one_line_file(const char *path, char **ret);
/* Writes value with one write(2). Returns 0, or the kernel's negative errno (-ENODEV, -EBUSY, ...). */
int write_string_file(const char *path, const char *value);
/* Resolves a symlink and returns the last component of its target ("vfio-pci" for a driver link).
 * -ENOENT when there is no link. */
int read_link_basename(const char *path, char **ret);
/* Parses an unsigned number in base 0 ("0x10de", "12") that must fill the whole string. */
int parse_unsigned(const char *s, unsigned long long max, unsigned long long *ret);
int parse_signed_int(const char *s, int *ret);
/*
 * Replaces dir/name with data so that a crash at any point leaves either the old or the new file, never a
 * mix: write a temporary file in the same directory, fsync it, rename it over the old one, fsync the
 * directory so the rename itself is durable. Returns only once the data is on disk.
 */
int write_file_atomic(const char *dir, const char *name, const void *data, size_t len);
/* Reads a whole (small) file; *ret is NUL-terminated, *ret_len excludes the NUL. */
int read_full_file(const char *path, char **ret, size_t *ret_len);
/* The same from an open descriptor (a pipe: read to its end). */
int read_full_fd(int fd, char **ret, size_t *ret_len);
