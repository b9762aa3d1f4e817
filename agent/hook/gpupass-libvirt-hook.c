/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupass-libvirt-hook, installed as $sysconfdir/libvirt/hooks/qemu.d/gpupass. libvirtd (6.5 and later)
 * runs every executable file of hooks/qemu.d, in alphabetical order, as `PATH DOMAIN OP SUBOP EXTRA` with
 * the domain XML on stdin, and waits for it. Two calls matter here:
 *
 * - `prepare begin`, before libvirt touches any host device: Claim (which binds the group to vfio-pci)
 *   every IOMMU group of the domain's managed='no' PCI hostdevs that gpupassd manages, for the domain's
 *   UUID. A refusal exits 1 with the agent's error on stderr, which libvirt puts into the error the user
 *   sees, after releasing what this run claimed; the start stops there.
 * - `release end`, after QEMU is gone (also after a failed start): Release those groups where the domain
 *   holds them; one it does not hold is fine.
 *
 * It never calls libvirt (libvirtd waits for it with the domain locked: that would deadlock) and is
 * bounded in time. Everything else (other calls, hostdevs gpupassd does not manage) is left alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "domain-xml.h"
#include "fileio.h"
#include "hook-agent.h"
#include "macro.h"

#define USEC_PER_SEC 1000000ull
/* Claims, listing included; a rollback after a refusal gets its own bound. libvirt has no timeout of its own. */
#define CLAIM_TIMEOUT_USEC (20 * USEC_PER_SEC)
#define ROLLBACK_TIMEOUT_USEC (10 * USEC_PER_SEC)

static void print_group(FILE *f, const struct hook_group *g) {
        if (g->gpu->group >= 0)
                fprintf(f, "%s (IOMMU group %d, GPU %s)", g->hostdev, g->gpu->group, g->gpu->address);
        else
                fprintf(f, "%s (GPU %s)", g->hostdev, g->gpu->address);
}

static bool held_by(const struct hook_group *g, const char *vm) {
        return strcasecmp(g->gpu->owner, vm) == 0;
}

/* Gives back what this run claimed, newest first. */
static void roll_back(struct hook_agent *a, const struct hook_group **claimed, size_t n, const char *vm) {
        hook_agent_set_timeout(a, ROLLBACK_TIMEOUT_USEC);
        while (n > 0) {
                const struct hook_group *g = claimed[--n];
                sd_bus_error error = SD_BUS_ERROR_NULL;

                if (hook_agent_call(a, g, "Release", vm, &error) < 0) {
                        fprintf(stderr, "gpupass: could not release ");
                        print_group(stderr, g);
                        fprintf(stderr, " again: %s: %s\n", error.name, error.message);
                } else
                        printf("gpupass: released %s again\n", g->hostdev);
                sd_bus_error_free(&error);
        }
}

static int prepare(struct hook_agent *a, const struct domain_xml_info *d) {
        _cleanup_free_ const struct hook_group **claimed = NULL;
        size_t n_claimed = 0;

        /* libvirt rebinds a managed='yes' device itself, at start and at stop, whoever holds it: that would
         * hand a GPU past its claim. Refused before anything is claimed. */
        for (size_t i = 0; i < a->n_groups; i++)
                if (a->groups[i].managed) {
                        fprintf(stderr, "gpupass: domain '%s' (%s): hostdev ", d->name, d->uuid);
                        print_group(stderr, &a->groups[i]);
                        fprintf(stderr, " has managed='yes', but gpupassd manages that GPU: use managed='no' "
                                "(gpupass claims it and binds it to vfio-pci)\n");
                        return 1;
                }
        claimed = calloc(a->n_groups ?: 1, sizeof(*claimed));
        if (!claimed) {
                fprintf(stderr, "gpupass: out of memory\n");
                return 1;
        }
        for (size_t i = 0; i < a->n_groups; i++) {
                const struct hook_group *g = &a->groups[i];
                sd_bus_error error = SD_BUS_ERROR_NULL;

                /* Already this domain's (the aggregator claims before it starts the domain): not this run's
                 * to give back if a later group is refused. */
                if (held_by(g, d->uuid)) {
                        printf("gpupass: %s is already claimed for domain '%s' (%s)\n", g->hostdev, d->name, d->uuid);
                        continue;
                }
                if (hook_agent_call(a, g, "Claim", d->uuid, &error) < 0) {
                        fprintf(stderr, "gpupass: domain '%s' (%s) cannot have ", d->name, d->uuid);
                        print_group(stderr, g);
                        fprintf(stderr, ": %s: %s\n", error.name, error.message);
                        sd_bus_error_free(&error);
                        roll_back(a, claimed, n_claimed, d->uuid);
                        return 1;
                }
                claimed[n_claimed++] = g;
                printf("gpupass: claimed ");
                print_group(stdout, g);
                printf(" for domain '%s' (%s)\n", d->name, d->uuid);
        }
        return 0;
}

static int release(struct hook_agent *a, const struct domain_xml_info *d) {
        int ret = 0;

        for (size_t i = 0; i < a->n_groups; i++) {
                const struct hook_group *g = &a->groups[i];
                sd_bus_error error = SD_BUS_ERROR_NULL;

                /* libvirt runs release after a start that failed, a refused claim included: a group this
                 * domain does not hold is not this hook's to touch. */
                if (!held_by(g, d->uuid))
                        continue;
                if (hook_agent_call(a, g, "Release", d->uuid, &error) < 0 &&
                    !sd_bus_error_has_name(&error, "org.gpupass.Error.NotOwner")) {
                        fprintf(stderr, "gpupass: domain '%s' (%s) could not release ", d->name, d->uuid);
                        print_group(stderr, g);
                        fprintf(stderr, ": %s: %s\n", error.name, error.message);
                        ret = 1;
                } else {
                        printf("gpupass: released ");
                        print_group(stdout, g);
                        printf(" of domain '%s' (%s)\n", d->name, d->uuid);
                }
                sd_bus_error_free(&error);
        }
        return ret;
}

int main(int argc, char *argv[]) {
        _cleanup_(domain_xml_info_freep) struct domain_xml_info *d = NULL;
        _cleanup_free_ char *xml = NULL, *message = NULL;
        struct hook_agent a;
        bool is_prepare, is_release;
        int r;

        if (argc < 4) {
                fprintf(stderr, "usage: %s DOMAIN OPERATION SUB-OPERATION [EXTRA] < DOMAIN-XML\n"
                        "(libvirtd runs it from /etc/libvirt/hooks/qemu.d/; see gpupass's README)\n", argv[0]);
                return 2;
        }
        is_prepare = strcmp(argv[2], "prepare") == 0 && strcmp(argv[3], "begin") == 0;
        is_release = strcmp(argv[2], "release") == 0 && strcmp(argv[3], "end") == 0;
        /* libvirt writes the XML for every call; read it all so that its write never meets a closed pipe. */
        r = read_full_fd(STDIN_FILENO, &xml, NULL);
        if (r < 0 && (is_prepare || is_release)) {
                fprintf(stderr, "gpupass: cannot read domain %s's XML on stdin: %s\n", argv[1], strerror(-r));
                return 1;
        }
        if (!is_prepare && !is_release)
                return 0;

        r = domain_xml_parse(xml, &d, &message);
        if (r < 0) {
                fprintf(stderr, "gpupass: the XML of domain %s on stdin is not usable: %s\n", argv[1],
                        message ?: strerror(-r));
                return 1;
        }
        if (!d->uuid || !d->name) {
                fprintf(stderr, "gpupass: the XML of domain %s on stdin has no <%s>\n", argv[1],
                        d->uuid ? "name" : "uuid");
                return 1;
        }
        /* A domain without PCI hostdevs never waits for gpupassd, nor depends on it running. */
        if (d->n_hostdevs == 0)
                return 0;

        r = hook_agent_open(&a, CLAIM_TIMEOUT_USEC, &message);
        if (r < 0) {
                /* Whether these hostdevs are GPUs is gpupassd's to say: without it, a start is refused
                 * rather than risk a GPU claimed by another VM. */
                fprintf(stderr, "gpupass: domain '%s' (%s) has PCI hostdevs, and %s\n", d->name, d->uuid,
                        message ?: strerror(-r));
                hook_agent_close(&a);
                return 1;
        }
        r = hook_agent_plan(&a, d);
        if (r < 0) {
                fprintf(stderr, "gpupass: %s\n", strerror(-r));
                hook_agent_close(&a);
                return 1;
        }
        r = is_prepare ? prepare(&a, d) : release(&a, d);
        hook_agent_close(&a);
        return r;
}
