/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * GPU requests checked against the cluster view at SetVmGpus, so that a typo is refused at once rather than
 * showing up as NoHostAvailable at the next PowerOn: a specific GPU must be on a configured host (and, when
 * that host has been seen, be one of its GPUs), a model must be one some host reports. A model is accepted
 * while some configured host has never been seen: it may have it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "link/hostlink.h"
#include "macro.h"
#include "registry/vm-spec.h"
#include "strv.h"

static bool host_seen(const struct hostlink *l) {
        return l->state == LINK_UP || l->n_gpus > 0;
}

static bool model_known(struct clusterd *c, const char *model, bool *ret_unseen_host) {
        *ret_unseen_host = false;
        for (size_t i = 0; i < c->n_hosts; i++) {
                struct hostlink *l = c->hosts[i];

                if (!host_seen(l))
                        *ret_unseen_host = true;
                for (size_t k = 0; k < l->n_gpus; k++)
                        if (l->gpus[k]->model && strcmp(l->gpus[k]->model, model) == 0)
                                return true;
        }
        return false;
}

static char *known_models(struct clusterd *c) {
        _cleanup_strv_free_ char **models = NULL;
        char *text = NULL;
        size_t len = 0;
        FILE *f;

        for (size_t i = 0; i < c->n_hosts; i++)
                for (size_t k = 0; k < c->hosts[i]->n_gpus; k++) {
                        const char *m = c->hosts[i]->gpus[k]->model;

                        if (m && *m && !strv_contains(models, m) && strv_extend(&models, m) < 0)
                                return NULL;
                }
        strv_sort(models);
        f = open_memstream(&text, &len);
        if (!f)
                return NULL;
        for (char **m = models; m && *m; m++)
                fprintf(f, "%s'%s'", m == models ? "" : ", ", *m);
        if (!models)
                fputs("none", f);
        fclose(f);
        return text;
}

/* A specific GPU: on a configured host, and one of its GPUs when the host has been seen. */
static int check_specific(struct clusterd *c, const struct gpu_request_spec *spec, char **ret_error) {
        struct hostlink *l = clusterd_find_host(c, spec->host, NULL);

        if (!l)
                return asprintf(ret_error, "no host '%s' in the cluster", spec->host) < 0 ? -ENOMEM : -ENOENT;
        if (!host_seen(l))
                return 0;
        for (size_t k = 0; k < l->n_gpus; k++)
                if (gpu_address_matches(l->gpus[k]->address, spec->address))
                        return 0;
        return asprintf(ret_error, "host %s has no GPU %s", l->name, spec->address) < 0 ? -ENOMEM : -ENOENT;
}

static int check_models(struct clusterd *c, char **models, char **ret_error) {
        for (char **m = models; m && *m; m++) {
                _cleanup_free_ char *known = NULL;
                bool unseen;

                if (model_known(c, *m, &unseen) || unseen)
                        continue;
                known = known_models(c);
                return asprintf(ret_error, "no host in the cluster has a GPU '%s' (models: %s)", *m, known ?: "?") < 0 ?
                        -ENOMEM : -ENOENT;
        }
        return 0;
}

int clusterd_check_requests(struct clusterd *c, const char *text, char **ret_error) {
        struct gpu_request_spec *specs = NULL;
        size_t n = 0;
        int r;

        *ret_error = NULL;
        r = gpu_requests_parse(text, &specs, &n, NULL);
        if (r < 0)
                return r == -EINVAL ? 0 : r; /* the syntax check has said so already */
        for (size_t i = 0; i < n && r >= 0; i++)
                r = specs[i].host ? check_specific(c, &specs[i], ret_error) : check_models(c, specs[i].models, ret_error);
        gpu_request_specs_free(specs, n);
        return r;
}
