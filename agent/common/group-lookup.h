/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/*
 * A group name to its gid through every source nsswitch.conf names, asked of getent(1) in a child process:
 * getgrnam() in the daemon would load the NSS modules (libnss_systemd and libm: 0.6 MiB of RSS when the
 * group is not in /etc/group; libnss_sss and more elsewhere) into a process that needs them for one lookup
 * at start-up and at reload, and glibc never unloads them. posix_spawn() is safe with worker threads
 * running. When getent cannot be run at all, getgrnam() is the fallback. -ENOENT: no such group.
 */
int group_lookup_gid(const char *name, gid_t *ret_gid);
