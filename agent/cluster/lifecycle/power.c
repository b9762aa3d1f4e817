/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PowerOn and PowerOff. PowerOn places the VM with the placement functions over the current view
 * (reachable hosts, not in maintenance, inside the affinity, with free CPU, memory and every requested GPU
 * at once), then claims the chosen GPUs on that host's agent one by one. The agent is the authority: on
 * Busy or any failure the GPUs claimed so far are released, the host is left out and the next best host is
 * tried. No host: the VM stays off and the error lists each host's reason. PowerOff releases the GPUs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "lifecycle/vm-runtime.h"
#include "link/hostlink.h"
#include "log.h"
#include "macro.h"
#include "placement/placement-index.h"
#include "strv.h"
#include "registry/vmstore.h"

struct power_job {
        struct clusterd *c;
        sd_bus_message *call;
        struct vm_record vm;
        uint8_t *excluded;        /* per host: a claim failed there during this PowerOn */
        char **failures;          /* per host: why */
        struct hostlink *link;    /* the host being claimed on */
        struct hostlink *only;    /* automatic restart: this host or none */
        char **gpus;              /* addresses to claim or release */
        size_t next;
        bool in_flight;           /* listed in c->powering_on */
        /* Undoing a failed attempt: the Releases not answered yet, the first that failed, and whether to
         * try another host once they have all answered or to give up (the host was lost mid-claim). */
        size_t releases_pending;
        char *release_failure;
        bool give_up_after_release;
        char *runtime_failure;    /* the domain did not start: libvirt's error, the VM stays off */
};

/* One PowerOn per VM at a time: a second one would place it again and claim more GPUs. */
static int power_job_start(struct power_job *j) {
        if (strv_contains(j->c->powering_on, j->vm.uuid))
                return -EALREADY;
        if (strv_extend(&j->c->powering_on, j->vm.uuid) < 0)
                return -ENOMEM;
        j->in_flight = true;
        return 0;
}

static void power_job_free(struct power_job *j) {
        if (!j)
                return;
        clusterd_job_end(j->c);
        if (j->in_flight)
                for (char **u = j->c->powering_on; u && *u; u++)
                        if (strcmp(*u, j->vm.uuid) == 0) {
                                free(*u);
                                memmove(u, u + 1, sizeof(*u) * (strv_length(u + 1) + 1));
                                break;
                        }
        sd_bus_message_unref(j->call);
        vm_record_done(&j->vm);
        if (j->failures)
                for (size_t i = 0; i < j->c->n_hosts; i++)
                        free(j->failures[i]);
        free(j->failures);
        free(j->excluded);
        strv_free(j->gpus);
        free(j->release_failure);
        free(j->runtime_failure);
        free(j);
}

/* Answers the caller, or, for an automatic power-on (no caller), says it in the journal. */
static void _printf_(3, 4) power_reply_errorf(struct power_job *j, const char *name, const char *format, ...) {
        _cleanup_free_ char *text = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&text, format, ap) < 0)
                text = NULL;
        va_end(ap);
        if (j->call)
                (void) sd_bus_reply_method_errorf(j->call, name, "%s", text ?: name);
        else
                log_warning("Automatic power-on of VM %s failed: %s", j->vm.name, text ?: name);
}

static bool gpu_is_free(const struct cluster_gpu *g) {
        return g->state && (strcmp(g->state, "host") == 0 || strcmp(g->state, "vfio") == 0);
}

struct usage {
        struct clusterd *c;
        struct host_capacity *hosts;
};

static int add_usage(const struct vm_record *v, void *userdata) {
        struct usage *u = userdata;
        size_t i;

        if (v->on && clusterd_find_host(u->c, v->host, &i)) {
                u->hosts[i].cpus_used += v->vcpus;
                u->hosts[i].memory_used_mib += v->memory_mib;
        }
        return 0;
}

/* What placement needs, from the view and the registry. */
struct placement_input {
        struct model_table models;
        struct host_capacity *hosts;
        struct gpu_request requests[PLACEMENT_MAX_REQUESTS];
        uint8_t *affinity;
        struct vm_demand demand;
        struct cluster_free cluster;
};

static void placement_input_done(struct placement_input *in) {
        model_table_done(&in->models);
        free(in->hosts);
        free(in->affinity);
}

static int placement_input_build(struct power_job *j, struct placement_input *in, char **ret_error) {
        struct clusterd *c = j->c;
        _cleanup_free_ char *requests = strdup(j->vm.gpus);
        char *save = NULL;
        size_t n = 0;
        int r;

        *in = (struct placement_input) {};
        in->hosts = calloc(c->n_hosts ?: 1, sizeof(*in->hosts));
        if (!in->hosts || !requests)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_hosts; i++) {
                struct hostlink *l = c->hosts[i];
                struct host_capacity *h = &in->hosts[i];

                h->name = l->name;
                h->state = l->state != LINK_UP || j->excluded[i] || (j->only && j->only != l) ? HOST_UNREACHABLE :
                           l->maintenance ? HOST_MAINTENANCE : HOST_UP;
                h->cpus = l->cpus;
                h->memory_mib = l->memory_mib;
                for (size_t k = 0; k < l->n_gpus; k++) {
                        int m = model_table_intern(&in->models, l->gpus[k]->model ?: "");

                        if (m < 0)
                                return m;
                        h->gpus_total++;
                        if (gpu_is_free(l->gpus[k])) {
                                h->free_by_model[m]++;
                                h->free_total++;
                        }
                }
        }
        r = vmstore_foreach(c->db, add_usage, &(struct usage) { c, in->hosts });
        if (r < 0)
                return r;

        for (char *req = strtok_r(requests, ";", &save); req; req = strtok_r(NULL, ";", &save)) {
                struct gpu_request *g;

                if (n >= PLACEMENT_MAX_REQUESTS)
                        return -E2BIG;
                g = &in->requests[n++];
                *g = (struct gpu_request) { .specific_host = -1, .specific_model = -1 };
                if (req[0] == '=') {
                        char *slash = strchr(req, '/');
                        size_t hi;
                        struct hostlink *l;

                        *slash = '\0';
                        l = clusterd_find_host(c, req + 1, &hi);
                        if (!l) {
                                if (asprintf(ret_error, "the VM asks for a GPU on host %s, which is not in the cluster",
                                             req + 1) < 0)
                                        *ret_error = NULL;
                                return -ENOENT;
                        }
                        g->count = 1;
                        g->specific_host = (int) hi;
                        for (size_t k = 0; k < l->n_gpus; k++)
                                if (strcmp(l->gpus[k]->address, slash + 1) == 0 ||
                                    (strlen(slash + 1) == 7 && strcmp(l->gpus[k]->address + 5, slash + 1) == 0)) {
                                        g->specific_gpu = (int) k;
                                        g->specific_gpu_free = gpu_is_free(l->gpus[k]);
                                        g->specific_model = model_table_intern(&in->models, l->gpus[k]->model ?: "");
                                }
                } else {
                        char *colon = strchr(req, ':'), *save2 = NULL;

                        g->count = (uint32_t) strtoul(req, NULL, 10);
                        for (char *m = strtok_r(colon + 1, "|", &save2); m; m = strtok_r(NULL, "|", &save2)) {
                                int mi = model_table_intern(&in->models, m);

                                if (mi < 0)
                                        return mi;
                                g->models |= 1ULL << mi;
                        }
                }
        }
        if (j->vm.affinity[0]) {
                in->affinity = calloc(c->n_hosts ?: 1, 1);
                if (!in->affinity)
                        return -ENOMEM;
                for (size_t i = 0; i < c->n_hosts; i++) {
                        _cleanup_free_ char *list = NULL, *needle = NULL;

                        if (asprintf(&list, ",%s,", j->vm.affinity) < 0 ||
                            asprintf(&needle, ",%s,", c->hosts[i]->name) < 0)
                                return -ENOMEM;
                        in->affinity[i] = strstr(list, needle) != NULL;
                }
        }
        in->demand = (struct vm_demand) { .vcpus = j->vm.vcpus, .memory_mib = j->vm.memory_mib,
                                          .requests = in->requests, .n_requests = n, .affinity = in->affinity };
        cluster_free_compute(in->hosts, c->n_hosts, &in->cluster);
        return 0;
}

static void power_on_try(struct power_job *j);

static void reply_no_host(struct power_job *j, struct placement_input *in) {
        struct clusterd *c = j->c;
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f) {
                power_reply_errorf(j, GPUPASS_ERROR_NO_HOST_AVAILABLE, "No host for VM %s", j->vm.name);
                return;
        }
        fprintf(f, "No host can run VM %s; it stays off.", j->vm.name);
        for (size_t i = 0; i < c->n_hosts; i++) {
                _cleanup_free_ char *why = NULL;

                if (j->excluded[i])
                        why = strdup(j->failures[i] ?: "the claim failed");
                else if (c->hosts[i]->state != LINK_UP)
                        why = strdup("unreachable");
                else
                        why = placement_explain(&in->hosts[i], i, &in->demand, &in->models);
                fprintf(f, " %s: %s;", c->hosts[i]->name, why ?: "does not fit");
        }
        if (c->n_hosts == 0)
                fprintf(f, " the cluster has no hosts.");
        fclose(f);
        power_reply_errorf(j, GPUPASS_ERROR_NO_HOST_AVAILABLE, "%s", text);
        free(text);
}

static int claim_next(struct power_job *j);
static int on_claim_done(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);

static int claim_next(struct power_job *j) {
        struct cluster_gpu *g;

        g = hostlink_find_gpu(j->link, j->gpus[j->next]);
        if (!g || !j->link->bus)
                return -ENOENT;
        return sd_bus_call_method_async(j->link->bus, NULL, GPUPASS_AGENT_BUS_NAME, g->path, GPUPASS_AGENT_GPU_IFACE,
                                        "Claim", on_claim_done, j, "s", j->vm.uuid);
}

static void release_claimed(struct power_job *j, bool give_up);

/* Claimed: the VM's record as it will run (host, GPUs), then its domain on the host's runtime, then on. */
static void power_on_record(struct power_job *j) {
        sd_bus_message *reply = NULL;
        int r;

        r = j->vm.host && j->vm.held ? vmstore_update(j->c->db, &j->vm) : -ENOMEM;
        if (r < 0) {
                power_reply_errorf(j, "org.gpupass.Error.StateNotSaved",
                                                  "VM %s got its GPUs on %s but the registry could not be written: %s",
                                                  j->vm.name, j->link->name, strerror(-r));
        } else {
                log_struct(LOG_INFO, NULL, j->vm.uuid, j->vm.host, "VM %s powered on on host %s with GPUs %s", j->vm.name, j->vm.host, j->vm.held);
                if (!j->call) {
                        power_job_free(j);
                        return;
                }
                r = sd_bus_message_new_method_return(j->call, &reply);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", j->vm.host);
                if (r >= 0)
                        r = sd_bus_message_append_strv(reply, j->gpus);
                if (r >= 0)
                        r = sd_bus_send(NULL, reply, NULL);
                sd_bus_message_unref(reply);
        }
        power_job_free(j);
}

static void on_domain_started(struct clusterd *c, const char *uuid, int r, const char *message, void *userdata) {
        struct power_job *j = userdata;

        if (r >= 0)
                return power_on_record(j);
        /* libvirt refused: the claims go back, the VM stays off, the answer names libvirt's reason. */
        j->vm.on = false;
        j->runtime_failure = strdup(message ?: strerror(-r));
        release_claimed(j, true);
}

static void power_on_done(struct power_job *j) {
        _cleanup_free_ char *held = strv_length(j->gpus) ? NULL : strdup("");
        _cleanup_free_ char *message = NULL;
        int r;

        if (!held) {
                size_t len = 0;
                for (char **a = j->gpus; *a; a++)
                        len += strlen(*a) + 1;
                held = calloc(1, len + 1);
                for (char **a = j->gpus; held && *a; a++) {
                        if (*held)
                                strcat(held, ",");
                        strcat(held, *a);
                }
        }
        free(j->vm.host);
        free(j->vm.held);
        (void) vm_flag_set(&j->vm.flags, "restart", NULL);
        j->vm.host = strdup(j->link->name);
        j->vm.held = TAKE_PTR(held);
        j->vm.on = true;
        if (!j->vm.host || !j->vm.held)
                return power_on_record(j);
        r = vm_runtime_start(j->c, &j->vm, on_domain_started, j, &message);
        if (r > 0)
                return power_on_record(j);
        if (r < 0)
                on_domain_started(j->c, j->vm.uuid, r, message, j);
}

/* All Releases of a failed attempt have answered: go on as decided, unless one failed. Then the VM stays
 * off: a claim in its name may still be held on that host, and powering it on elsewhere would leave its
 * GPUs split over two hosts, one of them unknown to the registry. */
static void release_finished(struct power_job *j) {
        if (j->runtime_failure && !j->release_failure) {
                power_reply_errorf(j, GPUPASS_ERROR_RUNTIME_FAILED,
                                   "VM %s stays off: libvirt on host %s did not start its domain: %s", j->vm.name,
                                   j->link->name, j->runtime_failure);
                power_job_free(j);
        } else if (j->release_failure) {
                power_reply_errorf(j, GPUPASS_ERROR_HOST_UNREACHABLE,
                                   "VM %s stays off: undoing its claims on host %s failed (%s); the GPUs may still be "
                                   "claimed in its name there: release them on that host's agent, then power it on",
                                   j->vm.name, j->link->name, j->release_failure);
                power_job_free(j);
        } else if (j->give_up_after_release) {
                power_reply_errorf(j, GPUPASS_ERROR_HOST_UNREACHABLE, "Lost host %s while claiming", j->link->name);
                power_job_free(j);
        } else
                power_on_try(j);
}

static int on_release_done(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct power_job *j = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        /* NotOwner: not held in this VM's name any more, which is what was asked. A lost connection answers
         * here too, as an error sd-bus makes up. */
        if (e && !sd_bus_error_has_name(e, GPUPASS_ERROR_NOT_OWNER) && !j->release_failure &&
            asprintf(&j->release_failure, "%s: %s", e->name, e->message ?: "no message") < 0)
                j->release_failure = NULL;
        if (--j->releases_pending == 0)
                release_finished(j);
        return 0;
}

/* Releases what this attempt claimed so far, in order (the agent serialises them), and goes on when the
 * agent has answered them all: the next host is tried only once this one holds nothing of the VM's. */
static void release_claimed(struct power_job *j, bool give_up) {
        j->give_up_after_release = give_up;
        j->releases_pending = 1; /* held by this loop, so that no answer finishes it early */
        for (size_t k = 0; k < j->next; k++) {
                struct cluster_gpu *g = hostlink_find_gpu(j->link, j->gpus[k]);
                int r = -ENOTCONN;

                if (g && j->link->bus)
                        r = sd_bus_call_method_async(j->link->bus, NULL, GPUPASS_AGENT_BUS_NAME, g->path,
                                                     GPUPASS_AGENT_GPU_IFACE, "Release", on_release_done, j, "s",
                                                     j->vm.uuid);
                if (r >= 0)
                        j->releases_pending++;
                else if (!j->release_failure &&
                         asprintf(&j->release_failure, "Release of %s not sent: %s", j->gpus[k], strerror(-r)) < 0)
                        j->release_failure = NULL;
        }
        if (--j->releases_pending == 0)
                release_finished(j);
}

static int on_claim_done(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct power_job *j = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        size_t host = 0;

        if (!e) {
                struct cluster_gpu *g = hostlink_find_gpu(j->link, j->gpus[j->next]);

                /* The view shows it claimed at once (the agent's PropertiesChanged follows): the next
                 * placement of this aggregator does not pick it meanwhile. */
                if (g) {
                        char *state = strdup("claimed"), *owner = strdup(j->vm.uuid);

                        if (state && owner) {
                                free(g->state);
                                free(g->owner);
                                g->state = state;
                                g->owner = owner;
                        } else {
                                free(state);
                                free(owner);
                        }
                }
                j->next++;
                if (!j->gpus[j->next])
                        power_on_done(j);
                else if (claim_next(j) < 0)
                        release_claimed(j, true);
                return 0;
        }
        /* The agent refused (Busy: another aggregator was faster; or any failure): undo and go on. */
        clusterd_find_host(j->c, j->link->name, &host);
        j->excluded[host] = 1;
        free(j->failures[host]);
        if (asprintf(&j->failures[host], "claim of %s refused (%s)", j->gpus[j->next], e->message ?: e->name) < 0)
                j->failures[host] = NULL;
        log_struct(LOG_NOTICE, NULL, j->vm.uuid, j->link->name, "VM %s: %s on %s, trying another host", j->vm.name, j->failures[host] ?: "claim refused",
                   j->link->name);
        release_claimed(j, false);
        return 0;
}

/* Chooses a host and the concrete GPUs, then starts claiming. Frees j when it answers. */
static void power_on_try(struct power_job *j) {
        struct clusterd *c = j->c;
        struct placement_input in;
        _cleanup_free_ char *error = NULL;
        struct placement_index *index = NULL;
        struct placement p;
        uint64_t seed = 0;
        int r;

        r = placement_input_build(j, &in, &error);
        if (r < 0) {
                power_reply_errorf(j, r == -ENOENT ? GPUPASS_ERROR_NO_HOST_AVAILABLE :
                                                  GPUPASS_ERROR_INVALID_ARGUMENT, "VM %s: %s", j->vm.name,
                                                  error ?: strerror(-r));
                placement_input_done(&in);
                power_job_free(j);
                return;
        }
        /* The benchmark's decision function (tests/bench/placement-bench.c), over this call's snapshot. */
        r = placement_index_new(in.hosts, c->n_hosts, &index);
        if (r >= 0) {
                r = placement_index_choose(index, &in.demand, &in.cluster, POLICY_BEST_FIT, &seed, &p);
                placement_index_free(index);
        }
        if (r == -ENOMEM) {
                power_reply_errorf(j, SD_BUS_ERROR_NO_MEMORY, "VM %s: out of memory while placing it", j->vm.name);
                placement_input_done(&in);
                power_job_free(j);
                return;
        }
        if (r < 0) {
                reply_no_host(j, &in);
                placement_input_done(&in);
                power_job_free(j);
                return;
        }
        j->link = c->hosts[p.host];
        strv_free(j->gpus);
        j->gpus = NULL;
        j->next = 0;
        for (size_t i = 0; i < in.demand.n_requests; i++) {
                const struct gpu_request *req = &in.requests[i];
                uint32_t taken = 0;

                if (req->specific_host >= 0) {
                        (void) strv_extend(&j->gpus, j->link->gpus[req->specific_gpu]->address);
                        continue;
                }
                for (size_t k = 0; k < j->link->n_gpus && taken < req->count; k++) {
                        struct cluster_gpu *g = j->link->gpus[k];

                        if (gpu_is_free(g) && model_table_find(&in.models, g->model ?: "") == p.model_for_request[i] &&
                            !strv_contains(j->gpus, g->address)) {
                                (void) strv_extend(&j->gpus, g->address);
                                taken++;
                        }
                }
        }
        placement_input_done(&in);
        if (!j->gpus) {
                power_on_done(j); /* a VM without GPUs: nothing to claim */
                return;
        }
        if (claim_next(j) < 0) {
                power_reply_errorf(j, GPUPASS_ERROR_HOST_UNREACHABLE, "Host %s went away",
                                                  j->link->name);
                power_job_free(j);
        }
}

static int method_power_on(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        struct power_job *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->c = c;
        clusterd_job_begin(c);
        r = clusterd_vm_from_call(c, call, true, &j->vm, error);
        if (r < 0) {
                power_job_free(j);
                return r;
        }
        if (j->vm.on) {
                r = sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "VM %s is already on, on host %s", j->vm.name,
                                      j->vm.host);
                power_job_free(j);
                return r;
        }
        {
                _cleanup_free_ char *model = vm_flag_get(j->vm.flags, "reconfigure");

                if (model) {
                        r = sd_bus_error_setf(error, GPUPASS_ERROR_NEEDS_RECONFIGURATION,
                                              "VM %s needs its GPU configuration redone: its GPU is now %s (a "
                                              "reflash); set its GPUs again, e.g. with that model", j->vm.name, model);
                        power_job_free(j);
                        return r;
                }
        }
        j->excluded = calloc(c->n_hosts ?: 1, 1);
        j->failures = calloc(c->n_hosts ?: 1, sizeof(char *));
        if (!j->excluded || !j->failures) {
                power_job_free(j);
                return -ENOMEM;
        }
        r = power_job_start(j);
        if (r < 0) {
                if (r == -EALREADY)
                        r = sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "VM %s is being powered on already",
                                              j->vm.name);
                power_job_free(j);
                return r;
        }
        j->call = sd_bus_message_ref(call);
        power_on_try(j);
        return 1;
}

int clusterd_power_on_vm(struct clusterd *c, const char *uuid, struct hostlink *only) {
        struct power_job *j;
        _cleanup_free_ char *model = NULL;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->c = c;
        clusterd_job_begin(c);
        j->only = only;
        r = vmstore_get(c->db, uuid, &j->vm);
        if (r >= 0 && (j->vm.on || (model = vm_flag_get(j->vm.flags, "reconfigure")))) {
                /* Already on, or flagged after a reflash: a flagged VM is never powered on automatically. */
                if (model)
                        log_notice("VM %s is not powered on again: it needs its GPU configuration redone (%s)",
                                   j->vm.name, model);
                r = -EALREADY;
        }
        j->excluded = calloc(c->n_hosts ?: 1, 1);
        j->failures = calloc(c->n_hosts ?: 1, sizeof(char *));
        if (r >= 0 && (!j->excluded || !j->failures))
                r = -ENOMEM;
        if (r >= 0)
                r = power_job_start(j);
        if (r < 0) {
                power_job_free(j);
                return r;
        }
        power_on_try(j);
        return 0;
}

/* Power-off: the VM is off once every agent's Release has answered. A Release the agent refuses (Busy: the
 * VMM still holds the group) keeps the VM on, with the reason; NotOwner means it is released already. */
struct power_off {
        struct clusterd *c;
        struct vm_record vm;
        struct hostlink *link;
        char *restart_on;
        size_t pending;
        char *failure;
        clusterd_power_off_done_t done;
        void *userdata;
};

static void power_off_finish(struct power_off *p) {
        int r = 0;

        if (!p->failure) {
                /* host and held stay as the last placement: a reflash of those GPUs concerns this VM. */
                p->vm.on = false;
                if (p->restart_on && vm_flag_set(&p->vm.flags, "restart", p->restart_on) < 0)
                        r = -ENOMEM;
                if (r >= 0)
                        r = vmstore_update(p->c->db, &p->vm);
                if (r >= 0)
                        log_struct(LOG_INFO, NULL, p->vm.uuid, p->vm.host, "VM %s powered off%s%s", p->vm.name, p->restart_on ? " for the maintenance of " : "",
                                 p->restart_on ?: "");
        } else
                log_notice("VM %s stays on: %s", p->vm.name, p->failure);
        p->done(p->c, &p->vm, r, p->failure, p->userdata);
        vm_record_done(&p->vm);
        free(p->restart_on);
        free(p->failure);
        clusterd_job_end(p->c);
        free(p);
}

static int on_release_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct power_off *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e && !sd_bus_error_has_name(e, GPUPASS_ERROR_NOT_OWNER) && !p->failure)
                p->failure = strdup(e->message ?: e->name);
        if (--p->pending == 0)
                power_off_finish(p);
        return 0;
}

/* The agent releases (and resets) each GPU. */
static void release_gpus(struct power_off *p) {
        _cleanup_free_ char *held = strdup(p->vm.held);
        char *save = NULL;

        for (char *a = held ? strtok_r(held, ",", &save) : NULL; a; a = strtok_r(NULL, ",", &save)) {
                struct cluster_gpu *g = hostlink_find_gpu(p->link, a);

                if (g && p->link->bus &&
                    sd_bus_call_method_async(p->link->bus, NULL, GPUPASS_AGENT_BUS_NAME, g->path,
                                             GPUPASS_AGENT_GPU_IFACE, "Release", on_release_reply, p, "s",
                                             p->vm.uuid) >= 0)
                        p->pending++;
        }
        if (p->pending == 0)
                power_off_finish(p);
}

static void on_domain_stopped(struct clusterd *c, const char *uuid, int r, const char *message, void *userdata) {
        struct power_off *p = userdata;

        if (r >= 0)
                return release_gpus(p);
        /* The domain may still run: its GPUs stay claimed and the VM on. */
        if (asprintf(&p->failure, "libvirt on host %s did not stop its domain: %s", p->vm.host,
                     message ?: strerror(-r)) < 0)
                p->failure = strdup("libvirt did not stop its domain");
        power_off_finish(p);
}

int clusterd_power_off_vm(struct clusterd *c, const struct vm_record *vm, const char *restart_on,
                          clusterd_power_off_done_t done, void *userdata) {
        struct power_off *p;
        struct hostlink *l;
        int r;

        l = clusterd_find_host(c, vm->host, NULL);
        if (!l || l->state != LINK_UP || !l->bus)
                return -EHOSTUNREACH;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (struct power_off) { .c = c, .done = done, .userdata = userdata };
        p->vm = (struct vm_record) { .vcpus = vm->vcpus, .memory_mib = vm->memory_mib, .on = vm->on };
        memcpy(p->vm.uuid, vm->uuid, sizeof(p->vm.uuid));
        p->vm.name = strdup(vm->name);
        p->vm.gpus = strdup(vm->gpus);
        p->vm.affinity = strdup(vm->affinity);
        p->vm.host = strdup(vm->host);
        p->vm.held = strdup(vm->held);
        p->vm.flags = strdup(vm->flags);
        p->restart_on = restart_on ? strdup(restart_on) : NULL;
        if (!p->vm.name || !p->vm.gpus || !p->vm.affinity || !p->vm.host || !p->vm.held || !p->vm.flags ||
            (restart_on && !p->restart_on)) {
                vm_record_done(&p->vm);
                free(p->restart_on);
                free(p);
                return -ENOMEM;
        }
        clusterd_job_begin(c);
        p->link = l;
        /* The domain stops first (ACPI shutdown, destroy at the timeout): its GPUs are free only then. */
        r = vm_runtime_stop(c, vm, on_domain_stopped, p);
        if (r > 0)
                release_gpus(p);
        else if (r < 0)
                on_domain_stopped(c, vm->uuid, r, r == -ENOTCONN ? "its host's libvirt is not connected" : NULL, p);
        return 0;
}

static void power_off_replied(struct clusterd *c, const struct vm_record *vm, int r, const char *failure,
                              void *userdata) {
        sd_bus_message *call = userdata;

        if (failure)
                (void) sd_bus_reply_method_errorf(call, GPUPASS_ERROR_BUSY, "VM %s stays on: %s", vm->name, failure);
        else if (r < 0)
                (void) sd_bus_reply_method_errorf(call, "org.gpupass.Error.StateNotSaved",
                                                  "VM %s released its GPUs, but the registry could not be written: %s",
                                                  vm->name, strerror(-r));
        else
                (void) sd_bus_reply_method_return(call, NULL);
        sd_bus_message_unref(call);
}

static int method_power_off(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record vm = {};
        int r;

        r = clusterd_vm_from_call(c, call, true, &vm, error);
        if (r < 0)
                return r;
        if (!vm.on)
                return sd_bus_reply_method_return(call, NULL);
        r = clusterd_power_off_vm(c, &vm, NULL, power_off_replied, sd_bus_message_ref(call));
        if (r == -EHOSTUNREACH) {
                sd_bus_message_unref(call);
                return sd_bus_error_setf(error, GPUPASS_ERROR_HOST_UNREACHABLE,
                                         "Host %s of VM %s is unreachable: its GPUs cannot be released now", vm.host,
                                         vm.name);
        }
        if (r < 0)
                sd_bus_message_unref(call);
        return r < 0 ? r : 1;
}

const sd_bus_vtable power_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("PowerOn", SD_BUS_ARGS("s", vm), SD_BUS_RESULT("s", host, "as", gpus), method_power_on,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PowerOff", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, method_power_off,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
