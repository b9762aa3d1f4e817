/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

/*
 * Blocking work off the event loop. A job runs `work` on its own thread and, when that returns, calls
 * `done` on the event loop thread (woken through an eventfd), then frees itself. `work` must not touch
 * sd-bus, libudev or anything else the loop owns: it gets only `userdata`, which `done` owns again.
 * Jobs are rare (an operator binding a group), so a thread per job is simpler than a pool.
 */
struct job;

typedef int (*job_work_t)(void *userdata);
typedef void (*job_done_t)(int result, void *userdata);

int job_start(sd_event *event, job_work_t work, job_done_t done, void *userdata);
