/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvirt's event loop on sd-event. The same job as libvirt-glib's event.c does for GLib, with one
 * difference: GLib's main context may be changed from any thread, sd-event may not. So the registration
 * functions (called by libvirt from any thread) only record the change under the lock and wake the main
 * thread through an eventfd; the main thread applies every recorded change to its sources, and calls
 * the free callbacks of removed watches there, outside any libvirt call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <libvirt/libvirt.h>

#include "libvirt-event.h"
#include "log.h"
#include "macro.h"

struct lv_watch {
        int id;
        bool timer;          /* a timeout, else a file handle */
        int fd;
        int events;          /* a handle's VIR_EVENT_HANDLE_* */
        int interval_ms;     /* a timeout's: -1 off, 0 every loop iteration, else its period */
        virEventHandleCallback handle_cb;
        virEventTimeoutCallback timeout_cb;
        void *opaque;
        virFreeCallback ff;
        bool removed;
        bool dirty;          /* changed since the main thread last applied it */
        sd_event_source *source; /* main thread only */
};

static struct {
        pthread_mutex_t lock;
        sd_event *event;
        int wake_fd;
        sd_event_source *wake_source;
        struct lv_watch **watches;
        size_t n_watches;
        int next_id;
} lv = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1, .next_id = 1 };

static struct lv_watch *find_locked(int id) {
        for (size_t i = 0; i < lv.n_watches; i++)
                if (lv.watches[i]->id == id)
                        return lv.watches[i];
        return NULL;
}

static void wake_main(void) {
        uint64_t one = 1;

        /* Only fails when the counter is full, which means a wake-up is pending anyway. */
        (void) !write(lv.wake_fd, &one, sizeof(one));
}

static int add_watch(struct lv_watch *w) {
        struct lv_watch **t;
        int id;

        pthread_mutex_lock(&lv.lock);
        t = realloc(lv.watches, sizeof(*t) * (lv.n_watches + 1));
        if (!t) {
                pthread_mutex_unlock(&lv.lock);
                free(w);
                return -1;
        }
        lv.watches = t;
        id = w->id = lv.next_id++;
        w->dirty = true;
        lv.watches[lv.n_watches++] = w;
        pthread_mutex_unlock(&lv.lock);
        wake_main();
        return id;
}

/* Runs f on the watch under the lock and marks it for the main thread; -1 for an unknown id. */
static int change_watch(int id, bool timer, void (*f)(struct lv_watch *w, int value), int value) {
        struct lv_watch *w;

        pthread_mutex_lock(&lv.lock);
        w = find_locked(id);
        if (!w || w->removed || w->timer != timer) {
                pthread_mutex_unlock(&lv.lock);
                return -1;
        }
        f(w, value);
        w->dirty = true;
        pthread_mutex_unlock(&lv.lock);
        wake_main();
        return 0;
}

static void set_events(struct lv_watch *w, int value) {
        w->events = value;
}

static void set_interval(struct lv_watch *w, int value) {
        w->interval_ms = value;
}

static void set_removed(struct lv_watch *w, int value) {
        w->removed = true;
}

static uint32_t epoll_from_libvirt(int events) {
        return (events & VIR_EVENT_HANDLE_READABLE ? EPOLLIN : 0) |
               (events & VIR_EVENT_HANDLE_WRITABLE ? EPOLLOUT : 0);
}

static int libvirt_from_epoll(uint32_t revents) {
        return (revents & EPOLLIN ? VIR_EVENT_HANDLE_READABLE : 0) |
               (revents & EPOLLOUT ? VIR_EVENT_HANDLE_WRITABLE : 0) |
               (revents & EPOLLERR ? VIR_EVENT_HANDLE_ERROR : 0) |
               (revents & EPOLLHUP ? VIR_EVENT_HANDLE_HANGUP : 0);
}

static int on_handle(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        int id = (int) (intptr_t) userdata;
        virEventHandleCallback cb;
        struct lv_watch *w;
        void *opaque;

        pthread_mutex_lock(&lv.lock);
        w = find_locked(id);
        if (!w || w->removed || w->events == 0) { /* changed since epoll reported it */
                pthread_mutex_unlock(&lv.lock);
                return 0;
        }
        cb = w->handle_cb;
        opaque = w->opaque;
        pthread_mutex_unlock(&lv.lock);
        cb(id, fd, libvirt_from_epoll(revents), opaque);
        return 0;
}

static int arm_timer(sd_event_source *s, int interval_ms) {
        uint64_t now;
        int r;

        r = sd_event_now(lv.event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        r = sd_event_source_set_time(s, now + (uint64_t) interval_ms * 1000);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        int id = (int) (intptr_t) userdata;
        virEventTimeoutCallback cb;
        struct lv_watch *w;
        void *opaque;
        int r;

        pthread_mutex_lock(&lv.lock);
        w = find_locked(id);
        if (!w || w->removed || w->interval_ms < 0) {
                pthread_mutex_unlock(&lv.lock);
                return 0;
        }
        /* libvirt's timeouts repeat until changed: the next period starts now. */
        r = arm_timer(s, w->interval_ms);
        if (r < 0)
                log_warning_errno(r, "Failed to re-arm a libvirt timeout, ignoring: %m");
        cb = w->timeout_cb;
        opaque = w->opaque;
        pthread_mutex_unlock(&lv.lock);
        cb(id, opaque);
        return 0;
}

static int apply_handle(struct lv_watch *w) {
        int r;

        if (w->events == 0)
                return w->source ? sd_event_source_set_enabled(w->source, SD_EVENT_OFF) : 0;
        if (!w->source) {
                r = sd_event_add_io(lv.event, &w->source, w->fd, epoll_from_libvirt(w->events), on_handle,
                                    (void *) (intptr_t) w->id);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(w->source, "libvirt-handle");
        } else {
                r = sd_event_source_set_io_events(w->source, epoll_from_libvirt(w->events));
                if (r < 0)
                        return r;
        }
        return sd_event_source_set_enabled(w->source, SD_EVENT_ON);
}

static int apply_timer(struct lv_watch *w) {
        int r;

        if (w->interval_ms < 0)
                return w->source ? sd_event_source_set_enabled(w->source, SD_EVENT_OFF) : 0;
        if (!w->source) {
                r = sd_event_add_time(lv.event, &w->source, CLOCK_MONOTONIC, 0, 1000, on_timer,
                                      (void *) (intptr_t) w->id);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(w->source, "libvirt-timeout");
        }
        return arm_timer(w->source, w->interval_ms);
}

/* Main thread, under the lock: removals first (an fd number libvirt closed may already be in a newer
 * watch), then the rest. The removed watches are handed back, to be freed outside the lock. */
static struct lv_watch **apply_locked(size_t *ret_n_dead) {
        struct lv_watch **dead = NULL;
        size_t n_dead = 0, kept = 0;

        for (size_t i = 0; i < lv.n_watches; i++) {
                struct lv_watch *w = lv.watches[i], **t;

                if (!w->removed) {
                        lv.watches[kept++] = w;
                        continue;
                }
                w->source = sd_event_source_disable_unref(w->source);
                t = realloc(dead, sizeof(*t) * (n_dead + 1));
                if (!t) { /* keep it listed: the next wake-up frees it */
                        lv.watches[kept++] = w;
                        continue;
                }
                dead = t;
                dead[n_dead++] = w;
        }
        lv.n_watches = kept;
        for (size_t i = 0; lv.event && i < lv.n_watches; i++) {
                struct lv_watch *w = lv.watches[i];
                int r;

                if (!w->dirty)
                        continue;
                w->dirty = false;
                r = w->timer ? apply_timer(w) : apply_handle(w);
                if (r < 0)
                        log_warning_errno(r, "Failed to follow a libvirt %s, ignoring: %m",
                                          w->timer ? "timeout" : "file handle");
        }
        *ret_n_dead = n_dead;
        return dead;
}

static void apply(void) {
        struct lv_watch **dead;
        size_t n_dead;

        pthread_mutex_lock(&lv.lock);
        dead = apply_locked(&n_dead);
        pthread_mutex_unlock(&lv.lock);
        for (size_t i = 0; i < n_dead; i++) {
                if (dead[i]->ff)
                        dead[i]->ff(dead[i]->opaque);
                free(dead[i]);
        }
        free(dead);
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        uint64_t n;

        (void) !read(fd, &n, sizeof(n));
        apply();
        return 0;
}

static int lv_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff) {
        struct lv_watch *w = malloc(sizeof(*w));

        if (!w)
                return -1;
        *w = (struct lv_watch) { .fd = fd, .events = events, .handle_cb = cb, .opaque = opaque, .ff = ff };
        return add_watch(w);
}

static void lv_update_handle(int watch, int events) {
        (void) change_watch(watch, false, set_events, events);
}

static int lv_remove_handle(int watch) {
        return change_watch(watch, false, set_removed, 0);
}

static int lv_add_timeout(int interval_ms, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff) {
        struct lv_watch *w = malloc(sizeof(*w));

        if (!w)
                return -1;
        *w = (struct lv_watch) { .timer = true, .fd = -1, .interval_ms = interval_ms, .timeout_cb = cb,
                                 .opaque = opaque, .ff = ff };
        return add_watch(w);
}

static void lv_update_timeout(int timer, int interval_ms) {
        (void) change_watch(timer, true, set_interval, interval_ms);
}

static int lv_remove_timeout(int timer) {
        return change_watch(timer, true, set_removed, 0);
}

int libvirt_event_setup(sd_event *event) {
        int r;

        if (lv.event)
                return -EALREADY;
        if (lv.wake_fd < 0) {
                /* Process-wide and kept open: a worker thread may still wake a detached loop. */
                lv.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (lv.wake_fd < 0)
                        return negative_errno();
        }
        r = sd_event_add_io(event, &lv.wake_source, lv.wake_fd, EPOLLIN, on_wake, NULL);
        if (r < 0)
                return r;
        /* Ahead of libvirt's own sources: a watch changed by a worker is current before it is dispatched. */
        (void) sd_event_source_set_priority(lv.wake_source, SD_EVENT_PRIORITY_IMPORTANT);
        (void) sd_event_source_set_description(lv.wake_source, "libvirt-event-wake");
        pthread_mutex_lock(&lv.lock);
        lv.event = sd_event_ref(event);
        for (size_t i = 0; i < lv.n_watches; i++)
                lv.watches[i]->dirty = true;
        pthread_mutex_unlock(&lv.lock);
        wake_main();

        static bool registered = false;
        if (!registered) {
                virEventRegisterImpl(lv_add_handle, lv_update_handle, lv_remove_handle, lv_add_timeout,
                                     lv_update_timeout, lv_remove_timeout);
                registered = true;
        }
        return 0;
}

void libvirt_event_detach(void) {
        if (!lv.event)
                return;
        apply(); /* runs the free callbacks still due */
        pthread_mutex_lock(&lv.lock);
        for (size_t i = 0; i < lv.n_watches; i++)
                lv.watches[i]->source = sd_event_source_disable_unref(lv.watches[i]->source);
        lv.wake_source = sd_event_source_disable_unref(lv.wake_source);
        lv.event = sd_event_unref(lv.event);
        pthread_mutex_unlock(&lv.lock);
}
