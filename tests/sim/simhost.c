/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupass-simhost: a simulated PCI host for the integration tests and the demo.
 *
 *   gpupass-simhost FIXTURE.ini -- COMMAND [ARGS...]
 *       builds the host's sysfs in a umockdev testbed and runs COMMAND with the environment that makes it
 *       and its descendants see it (UMOCKDEV_DIR, LD_PRELOAD), serving the kernel emulator and the control
 *       socket until COMMAND exits; exits with COMMAND's status.
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
        char buf[8192];
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

int main(int argc, char *argv[]) {
        struct simhost h = { .devices = g_ptr_array_new_with_free_func((GDestroyNotify) simdev_free) };
        g_autofree char *error = NULL, *kernel_socket = NULL, *ctl_socket = NULL, *preload = NULL, *ld = NULL;
        struct pollfd fds[3];
        int kernel_fd, ctl_fd, sfd, status = 0, i;
        sigset_t mask;
        pid_t child;

        if (argc >= 4 && strcmp(argv[1], "ctl") == 0)
                return run_ctl(argc, argv);
        if (argc < 4 || strcmp(argv[2], "--") != 0) {
                fprintf(stderr, "Usage: %s FIXTURE.ini -- COMMAND [ARGS...]\n       %s ctl SOCKET VERB [ARGS...]\n",
                        argv[0], argv[0]);
                return 2;
        }

        /* umockdev sends uevents through libudev in this process, which must see the testbed as /sys too:
         * run under umockdev's preload library, as umockdev-wrapper would. */
        if (!getenv("LD_PRELOAD") || !strstr(getenv("LD_PRELOAD"), "libumockdev-preload")) {
                g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
                g_autofree char *with = getenv("LD_PRELOAD") ?
                        g_strdup_printf("libumockdev-preload.so.0 %s", getenv("LD_PRELOAD")) :
                        g_strdup("libumockdev-preload.so.0");

                setenv("LD_PRELOAD", with, 1);
                execv(self, argv);
                g_error("cannot re-execute %s: %m", self);
        }

        /* Before umockdev starts its threads: they inherit the mask, so SIGCHLD reaches the signalfd. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        h.testbed = umockdev_testbed_new();
        h.root = umockdev_testbed_get_root_dir(h.testbed);
        if (sim_load_fixture(&h, argv[1], &error) < 0) {
                fprintf(stderr, "%s\n", error);
                return 2;
        }
        kernel_socket = g_build_filename(h.root, "simkernel.sock", NULL);
        ctl_socket = g_build_filename(h.root, "simhost.sock", NULL);
        kernel_fd = listen_on(kernel_socket);
        ctl_fd = listen_on(ctl_socket);

        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

        preload = preload_path();
        ld = g_strdup_printf("%s %s", preload, getenv("LD_PRELOAD"));
        child = fork();
        if (child < 0)
                g_error("fork: %m");
        if (child == 0) {
                sigprocmask(SIG_UNBLOCK, &mask, NULL);
                setenv("UMOCKDEV_DIR", h.root, 1);
                setenv("LD_PRELOAD", ld, 1);
                setenv("GPUPASS_SIMKERNEL_SOCKET", kernel_socket, 1);
                setenv("GPUPASS_SIMHOST_CTL", ctl_socket, 1);
                execvp(argv[3], argv + 3);
                fprintf(stderr, "Cannot run %s: %m\n", argv[3]);
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
                        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                                kill(child, (int) si.ssi_signo);
                        if (waitpid(child, &status, WNOHANG) == child)
                                break;
                }
        }
        close(kernel_fd);
        close(ctl_fd);
        g_ptr_array_free(h.devices, TRUE);
        g_object_unref(h.testbed); /* removes the testbed directory */
        g_free(h.root);
        i = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return i;
}
