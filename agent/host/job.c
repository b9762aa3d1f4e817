/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "job.h"
#include "macro.h"

struct job {
        pthread_t thread;
        int eventfd;
        sd_event_source *source;
        job_work_t work;
        job_done_t done;
        void *userdata;
        int result;
};

static void *job_thread(void *p) {
        struct job *j = p;
        uint64_t one = 1;

        j->result = j->work(j->userdata);
        /* The write is the hand-over: after it the loop thread owns j. */
        if (write(j->eventfd, &one, sizeof(one)) != sizeof(one))
                abort(); /* an eventfd write of 1 cannot fail short of a bug; a lost job would hang a caller */
        return NULL;
}

static int job_on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct job *j = userdata;

        pthread_join(j->thread, NULL);
        sd_event_source_disable_unref(j->source);
        close(j->eventfd);
        j->done(j->result, j->userdata);
        free(j);
        return 0;
}

int job_start(sd_event *event, job_work_t work, job_done_t done, void *userdata) {
        struct job *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        *j = (struct job) { .work = work, .done = done, .userdata = userdata, .eventfd = -EBADF };

        j->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->eventfd < 0) {
                r = negative_errno();
                goto fail;
        }
        r = sd_event_add_io(event, &j->source, j->eventfd, EPOLLIN, job_on_done, j);
        if (r < 0)
                goto fail;
        r = -pthread_create(&j->thread, NULL, job_thread, j);
        if (r < 0)
                goto fail;
        return 0;

fail:
        sd_event_source_disable_unref(j->source);
        if (j->eventfd >= 0)
                close(j->eventfd);
        free(j);
        return r;
}
