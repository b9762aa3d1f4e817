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

int clusterd_check_requests(struct clusterd *c, const char *text, char **ret_error) {
        _cleanup_free_ char *copy = strdup(text);
        char *save = NULL;
        int r = 0;

        *ret_error = NULL;
        if (!copy)
                return -ENOMEM;
        for (char *req = strtok_r(copy, ";", &save); req && r >= 0; req = strtok_r(NULL, ";", &save)) {
                if (req[0] == '=') {
                        char *slash = strchr(req, '/');
                        struct hostlink *l = NULL;
                        bool found = false;

                        if (!slash)
                                continue; /* the syntax check has said so already */
                        *slash = '\0';
                        l = clusterd_find_host(c, req + 1, NULL);
                        if (!l) {
                                r = asprintf(ret_error, "no host '%s' in the cluster", req + 1) < 0 ? -ENOMEM : -ENOENT;
                                break;
                        }
                        if (!host_seen(l))
                                continue;
                        for (size_t k = 0; k < l->n_gpus && !found; k++)
                                found = strcmp(l->gpus[k]->address, slash + 1) == 0 ||
                                        (strlen(slash + 1) == 7 && strcmp(l->gpus[k]->address + 5, slash + 1) == 0);
                        if (!found)
                                r = asprintf(ret_error, "host %s has no GPU %s", l->name, slash + 1) < 0 ? -ENOMEM :
                                                                                                           -ENOENT;
                } else {
                        char *colon = strchr(req, ':'), *save2 = NULL;

                        for (char *m = colon ? strtok_r(colon + 1, "|", &save2) : NULL; m;
                             m = strtok_r(NULL, "|", &save2)) {
                                bool unseen;

                                if (model_known(c, m, &unseen) || unseen)
                                        continue;
                                {
                                        _cleanup_free_ char *models = known_models(c);

                                        r = asprintf(ret_error, "no host in the cluster has a GPU '%s' (models: %s)", m,
                                                     models ?: "?") < 0 ? -ENOMEM : -ENOENT;
                                }
                                break;
                        }
                }
        }
        return r;
}
