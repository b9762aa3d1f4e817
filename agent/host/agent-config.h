/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/*
 * gpupassd.conf, an INI file in $CONFIGURATION_DIRECTORY (default /etc/gpupass). Missing file: defaults.
 *
 *   [Agent]
 *   AdminGroup=gpupass     # group (name or number) whose members may change state, besides root
 */
#define AGENT_CONFIG_DEFAULT_DIR "/etc/gpupass"
#define AGENT_CONFIG_FILE "gpupassd.conf"
#define AGENT_STATE_DEFAULT_DIR "/var/lib/gpupass"
#define AGENT_DEFAULT_ADMIN_GROUP "gpupass"

struct agent_config {
        char *admin_group;  /* as configured */
        bool admin_gid_valid;
        gid_t admin_gid;    /* resolved; invalid when the group does not exist: then only root */
};

/* Parses `path`; a missing file leaves the defaults. -EINVAL with *ret_line set for a bad line. */
int agent_config_load(struct agent_config *c, const char *path, int *ret_line);
/* Parses from a string (for tests and fuzzing). */
int agent_config_parse_string(struct agent_config *c, const char *text, int *ret_line);
void agent_config_done(struct agent_config *c);
/* Resolves admin_group to a gid; -ENOENT when no such group. */
int agent_config_resolve(struct agent_config *c);
