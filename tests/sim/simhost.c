/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupass-simhost: a simulated PCI host for the integration tests and the demo.
 *
 *   gpupass-simhost FIXTURE.ini [--keep DIR] -- COMMAND [ARGS...]
 *       builds the host's sysfs in a umockdev testbed and runs COMMAND with the environment that makes it
 *       and its descendants see it (UMOCKDEV_DIR, LD_PRELOAD), serving the kernel emulator and the control
 *       socket until COMMAND exits; exits with COMMAND's status. --keep moves the testbed to DIR at the end
 *       instead of removing it.
 *   gpupass-simhost ctl SOCKET VERB [ARGS...]
 *       sends one control command (remove ADDR | add ADDR key=value... | uevent ADDR ACTION |
 *       driver-load NAME | driver-unload NAME) and prints the reply.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "simhost.h"

static int listen_on(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
                g_error("cannot listen on %s: %m", path);
        return fd;
}

static void serve_kernel(struct simhost *h, int listener) {
        /* A path (up to PATH_MAX), its NUL, and the data (up to a page, as the shim sends it). */
        char buf[4096 + 1 + 4096 + 1];
        int64_t answer = -EINVAL;
        ssize_t n;
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
                return;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
                size_t path_len = strnlen(buf, (size_t) n);

                if (path_len < (size_t) n)
                        answer = sim_kernel_write(h, buf, buf + path_len + 1, (size_t) n - path_len - 1);
        }
        (void) send(fd, &answer, sizeof(answer), MSG_NOSIGNAL);
        close(fd);
}

static void serve_control(struct simhost *h, int listener) {
        char buf[4096];
        g_autofree char *reply = NULL;
        ssize_t n;
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
                return;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
                buf[n] = '\0';
                reply = sim_control(h, g_strstrip(buf));
                (void) send(fd, reply, strlen(reply), MSG_NOSIGNAL);
        }
        close(fd);
}

static int run_ctl(int argc, char *argv[]) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        g_autofree char *command = g_strjoinv(" ", argv + 3);
        char reply[4096];
        ssize_t n;
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        g_strlcpy(sa.sun_path, argv[2], sizeof(sa.sun_path));
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                fprintf(stderr, "Cannot connect to %s: %m\n", argv[2]);
                return 1;
        }
        if (send(fd, command, strlen(command), 0) < 0 || (n = recv(fd, reply, sizeof(reply) - 1, 0)) <= 0) {
                fprintf(stderr, "No reply from %s\n", argv[2]);
                return 1;
        }
        reply[n] = '\0';
        printf("%s\n", reply);
        return strncmp(reply, "OK", 2) == 0 ? 0 : 1;
}

static char *preload_path(void) {
        g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
        g_autofree char *dir = self ? g_path_get_dirname(self) : g_strdup(".");

        return g_build_filename(dir, "libgpupass-simkernel.so", NULL);
}

/*
 * LD_PRELOAD for COMMAND: our shim first (it must see a control-file write before anything else does, and
 * turn a uevent socket's bind() into a per-process path before umockdev's bind() picks one per fd number),
 * then umockdev's, then whatever was there (minus older copies of both: a simulated host started inside
 * another replaces the outer one's).
 */
static char *child_preload(const char *shim) {
        g_auto(GStrv) libs = g_strsplit_set(getenv("LD_PRELOAD") ?: "", " :", -1);
        GString *s = g_string_new(shim);

        g_string_append(s, " libumockdev-preload.so.0");
        for (char **l = libs; *l; l++)
                if (**l && !strstr(*l, "libgpupass-simkernel") && !strstr(*l, "libumockdev-preload"))
                        g_string_append_printf(s, " %s", *l);
        return g_string_free(s, FALSE);
}

/* --keep: the testbed outlives us in DIR, for a look at what the test left behind. */
static int keep_testbed(struct simhost *h, const char *dir) {
        g_autofree char *quoted_from = NULL, *quoted_to = NULL, *command = NULL;
        g_autoptr(GError) error = NULL;
        int status;

        /* Sockets mean nothing once we are gone. */
        {
                g_autoptr(GDir) d = g_dir_open(h->root, 0, NULL);
                const char *name;

                while (d && (name = g_dir_read_name(d)))
                        if (g_str_has_suffix(name, ".sock") || g_str_has_prefix(name, "event")) {
                                g_autofree char *path = g_build_filename(h->root, name, NULL);

                                (void) unlink(path);
                        }
        }
        /* A rename when DIR does not exist yet and is on the same file system; then umockdev removes an
         * empty directory. */
        if (rename(h->root, dir) == 0) {
                (void) mkdir(h->root, 0700);
                return 0;
        }
        if (g_mkdir_with_parents(dir, 0755) < 0)
                return -errno;
        quoted_from = g_shell_quote(h->root);
        quoted_to = g_shell_quote(dir);
        command = g_strdup_printf("cp -a %s/. %s/", quoted_from, quoted_to);
        if (!g_spawn_command_line_sync(command, NULL, NULL, &status, &error) || !g_spawn_check_wait_status(status, NULL))
                return -EIO;
        return 0;
}

static int usage(const char *argv0) {
        fprintf(stderr,
                "Usage: %s FIXTURE.ini [--keep DIR] -- COMMAND [ARGS...]\n"
                "       %s ctl SOCKET VERB [ARGS...]\n"
                "Verbs: remove ADDR | add ADDR key=value... | uevent ADDR ACTION | driver-load NAME |\n"
                "       driver-unload NAME | fail-probe ADDR DRIVER|- | unbind-delay MS | reset-delay MS\n",
                argv0, argv0);
        return 2;
}

int main(int argc, char *argv[]) {
        struct simhost h = {
                .devices = g_ptr_array_new_with_free_func((GDestroyNotify) simdev_free),
                .removed = g_ptr_array_new_with_free_func((GDestroyNotify) simdev_free),
        };
        g_autofree char *error = NULL, *kernel_socket = NULL, *ctl_socket = NULL, *preload = NULL, *ld = NULL;
        const char *fixture, *keep = NULL;
        char **command;
        struct pollfd fds[3];
        int kernel_fd, ctl_fd, sfd, status = 0, r;
        sigset_t mask;
        pid_t child;

        if (argc >= 4 && strcmp(argv[1], "ctl") == 0)
                return run_ctl(argc, argv);
        if (argc < 4)
                return usage(argv[0]);
        fixture = argv[1];
        command = argv + 2;
        if (strcmp(command[0], "--keep") == 0) {
                keep = command[1];
                command += 2;
        }
        if (!keep && strcmp(argv[2], "--keep") == 0)
                return usage(argv[0]);
        if (command - argv >= argc || strcmp(command[0], "--") != 0 || !command[1])
                return usage(argv[0]);
        command++;

        preload = preload_path();
        if (access(preload, R_OK) < 0) {
                fprintf(stderr, "%s missing: build the libgpupass-simkernel target\n", preload);
                return 2;
        }
        ld = child_preload(preload);
        /* We write the testbed through its real paths and never through a redirected /sys: whatever an outer
         * simulated host preloaded into us must not apply here. */
        unsetenv("LD_PRELOAD");
        unsetenv("GPUPASS_SIMKERNEL_SOCKET");
        unsetenv("GPUPASS_SIMHOST_CTL");

        /* Before umockdev starts its threads: they inherit the mask, so SIGCHLD reaches the signalfd. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        h.testbed = umockdev_testbed_new();
        {
                /* The shim recognises the testbed by the prefix of what /proc/self/fd links to: the resolved
                 * path (TMPDIR may be a symlink). */
                g_autofree char *root = umockdev_testbed_get_root_dir(h.testbed);
                char *resolved = realpath(root, NULL);

                h.root = resolved ? g_strdup(resolved) : g_strdup(root);
                free(resolved);
        }
        if (sim_load_fixture(&h, fixture, &error) < 0) {
                fprintf(stderr, "%s\n", error);
                g_object_unref(h.testbed);
                return 2;
        }
        kernel_socket = g_build_filename(h.root, "simkernel.sock", NULL);
        ctl_socket = g_build_filename(h.root, "simhost.sock", NULL);
        kernel_fd = listen_on(kernel_socket);
        ctl_fd = listen_on(ctl_socket);

        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                g_error("signalfd: %m");

        child = fork();
        if (child < 0)
                g_error("fork: %m");
        if (child == 0) {
                sigprocmask(SIG_UNBLOCK, &mask, NULL);
                setenv("UMOCKDEV_DIR", h.root, 1);
                setenv("LD_PRELOAD", ld, 1);
                setenv("GPUPASS_SIMKERNEL_SOCKET", kernel_socket, 1);
                setenv("GPUPASS_SIMHOST_CTL", ctl_socket, 1);
                execvp(command[0], command);
                fprintf(stderr, "Cannot run %s: %m\n", command[0]);
                _exit(127);
        }

        fds[0] = (struct pollfd) { .fd = kernel_fd, .events = POLLIN };
        fds[1] = (struct pollfd) { .fd = ctl_fd, .events = POLLIN };
        fds[2] = (struct pollfd) { .fd = sfd, .events = POLLIN };
        for (;;) {
                if (poll(fds, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        g_error("poll: %m");
                }
                if (fds[0].revents & POLLIN)
                        serve_kernel(&h, kernel_fd);
                if (fds[1].revents & POLLIN)
                        serve_control(&h, ctl_fd);
                if (fds[2].revents & POLLIN) {
                        struct signalfd_siginfo si;

                        if (read(sfd, &si, sizeof(si)) != sizeof(si))
                                continue;
                        /* Stopping the simulated host stops what runs on it. */
                        if (si.ssi_signo != SIGCHLD)
                                kill(child, (int) si.ssi_signo);
                        if (waitpid(child, &status, WNOHANG) == child)
                                break;
                }
        }
        close(kernel_fd);
        close(ctl_fd);
        close(sfd);
        if (keep) {
                r = keep_testbed(&h, keep);
                if (r < 0)
                        fprintf(stderr, "Cannot keep the testbed in %s: %s\n", keep, g_strerror(-r));
                else
                        fprintf(stderr, "Testbed kept in %s\n", keep);
        }
        g_ptr_array_free(h.devices, TRUE);
        g_ptr_array_free(h.removed, TRUE);
        g_object_unref(h.testbed); /* removes the testbed directory */
        g_free(h.root);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
