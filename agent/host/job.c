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

/* The job's own resources; its thread is joined (or was never started) and userdata is not its own. */
static struct job *job_free(struct job *j) {
        if (!j)
                return NULL;
        sd_event_source_disable_unref(j->source);
        if (j->eventfd >= 0)
                close(j->eventfd);
        return mfree(j);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct job *, job_free);

static int job_on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        _cleanup_(job_freep) struct job *j = userdata;

        pthread_join(j->thread, /* retval= */ NULL);
        j->done(j->result, j->userdata);
        return 0;
}

int job_start(sd_event *event, job_work_t work, job_done_t done, void *userdata) {
        _cleanup_(job_freep) struct job *j = NULL;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        *j = (struct job) { .work = work, .done = done, .userdata = userdata, .eventfd = -EBADF };

        j->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->eventfd < 0)
                return negative_errno();
        r = sd_event_add_io(event, &j->source, j->eventfd, EPOLLIN, job_on_done, j);
        if (r < 0)
                return r;
        r = -pthread_create(&j->thread, /* attr= */ NULL, job_thread, j);
        if (r < 0)
                return r;
        TAKE_PTR(j); /* the thread's, then job_on_done()'s */
        return 0;
}
