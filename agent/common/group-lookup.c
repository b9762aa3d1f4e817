/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "group-lookup.h"
#include "macro.h"

extern char **environ;

static int lookup_in_process(const char *name, gid_t *ret_gid) {
        struct group *gr;

        errno = 0;
        gr = getgrnam(name);
        if (!gr)
                return errno > 0 ? -errno : -ENOENT;
        *ret_gid = gr->gr_gid;
        return 0;
}

/* "name:password:gid:members\n": the gid of the first line, if it is the group asked for. */
static int parse_group_line(const char *line, const char *name, gid_t *ret_gid) {
        size_t n = strlen(name);
        const char *p;
        char *end;
        unsigned long gid;

        if (strncmp(line, name, n) != 0 || line[n] != ':')
                return -EBADMSG;
        p = strchr(line + n + 1, ':');
        if (!p || p[1] < '0' || p[1] > '9')
                return -EBADMSG;
        errno = 0;
        gid = strtoul(p + 1, &end, 10);
        if (errno || *end != ':' || gid >= (gid_t) -1)
                return -EBADMSG;
        *ret_gid = (gid_t) gid;
        return 0;
}

/* The child runs with default signal handling and nothing blocked, whatever the daemon has blocked for
 * its signalfd; its stdout is the pipe, stdin /dev/null. Returns the pid or -errno. */
static int spawn_getent(const char *name, int out_fd, pid_t *ret_pid) {
        char *argv[] = { (char *) "getent", (char *) "group", (char *) "--", (char *) name, NULL };
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attr;
        sigset_t none, defaults;
        int r;

        sigemptyset(&none);
        sigfillset(&defaults);
        r = posix_spawn_file_actions_init(&actions);
        if (r)
                return -r;
        r = posix_spawnattr_init(&attr);
        if (r) {
                posix_spawn_file_actions_destroy(&actions);
                return -r;
        }
        r = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (!r)
                r = posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
        if (!r)
                r = posix_spawnattr_setsigmask(&attr, &none);
        if (!r)
                r = posix_spawnattr_setsigdefault(&attr, &defaults);
        if (!r)
                r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (!r)
                r = posix_spawnp(ret_pid, "getent", &actions, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&actions);
        return -r;
}

int group_lookup_gid(const char *name, gid_t *ret_gid) {
        _cleanup_close_ int rfd = -EBADF;
        char buf[4096];
        size_t len = 0;
        int fds[2], status, r;
        pid_t pid;

        /* ":" and newlines cannot be in a group name: getent's answer would not parse. */
        if (!name || !*name || strpbrk(name, ":\n"))
                return -EINVAL;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return negative_errno();
        rfd = fds[0];
        r = spawn_getent(name, fds[1], &pid);
        close(fds[1]);
        if (r < 0)
                return lookup_in_process(name, ret_gid); /* no getent here */

        /* Read to the end, so that a long member list does not leave getent blocked on a full pipe. */
        for (;;) {
                char discard[4096];
                char *to = len < sizeof(buf) - 1 ? buf + len : discard;
                size_t room = len < sizeof(buf) - 1 ? sizeof(buf) - 1 - len : sizeof(discard);
                ssize_t n = read(rfd, to, room);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (to == buf + len)
                        len += (size_t) n;
        }
        buf[len] = '\0';

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (!WIFEXITED(status))
                return -EIO;
        if (WEXITSTATUS(status) == 2)
                return -ENOENT; /* getent: "key could not be found in the database" */
        if (WEXITSTATUS(status) == 127)
                return lookup_in_process(name, ret_gid); /* posix_spawnp found no getent */
        if (WEXITSTATUS(status) != 0)
                return -EIO;
        return parse_group_line(buf, name, ret_gid);
}
