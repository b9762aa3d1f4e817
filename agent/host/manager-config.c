/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manager's configuration: its directories (from systemd's environment, else the built-in defaults),
 * gpupassd.conf at start-up, and reading it again on SIGHUP (systemctl reload).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "gpupass/bus-names.h"
#include "log.h"
#include "macro.h"
#include "manager.h"

/* systemd may pass several directories separated by ':'; ours is the first. */
static char *first_directory(const char *env, const char *fallback) {
        const char *dir = getenv(env);

        if (!dir || !*dir)
                dir = fallback;
        return strndup(dir, strcspn(dir, ":"));
}

/* Reads $CONFIGURATION_DIRECTORY/gpupassd.conf into `c` and resolves its admin group; logs what is wrong. */
static int manager_read_config(const char *dir, struct agent_config *c) {
        _cleanup_free_ char *path = NULL;
        int line = 0, r;

        if (asprintf(&path, "%s/%s", dir, AGENT_CONFIG_FILE) < 0)
                return -ENOMEM;
        r = agent_config_load(c, path, &line);
        if (r == -EINVAL) {
                log_error("%s:%d: invalid setting", path, line);
                return r;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);
        r = agent_config_resolve(c);
        if (r < 0)
                log_notice_errno(r, "Admin group %s does not exist (%m): only root may change GPU state",
                                 c->admin_group);
        return 0;
}

int manager_load_config(struct manager *m) {
        _cleanup_free_ char *dir = first_directory("CONFIGURATION_DIRECTORY", AGENT_CONFIG_DEFAULT_DIR);

        if (!dir || asprintf(&m->passthrough_dir, "%s/passthrough.d", dir) < 0)
                return -ENOMEM;
        m->state_dir = first_directory("STATE_DIRECTORY", AGENT_STATE_DEFAULT_DIR);
        if (!m->state_dir)
                return -ENOMEM;
        return manager_read_config(dir, &m->config);
}

/* SIGHUP (systemctl reload): rereads gpupassd.conf. A file that does not parse leaves the running
 * configuration in place, so a typo does not lock the admins out. passthrough.d is read at start-up only:
 * binding GPUs is not a side effect of a reload. */
int manager_on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;
        _cleanup_free_ char *dir = first_directory("CONFIGURATION_DIRECTORY", AGENT_CONFIG_DEFAULT_DIR);
        _cleanup_(agent_config_done) struct agent_config fresh = {};
        int r;

        (void) sd_notify(/* unset_environment= */ false, "RELOADING=1");
        r = dir ? manager_read_config(dir, &fresh) : -ENOMEM;
        if (r < 0)
                log_error("Reload failed, keeping AdminGroup=%s", m->config.admin_group);
        else {
                /* The web console reads AdminGroup to decide whom it offers the changing actions. */
                bool group_changed = !streq_ptr(m->config.admin_group, fresh.admin_group);

                agent_config_done(&m->config);
                m->config = fresh;
                fresh = (struct agent_config) {}; /* handed over */
                log_info("Configuration reloaded: AdminGroup=%s", m->config.admin_group);
                if (group_changed && m->bus)
                        (void) sd_bus_emit_properties_changed(m->bus, GPUPASS_AGENT_MANAGER_PATH,
                                                              GPUPASS_AGENT_MANAGER_IFACE, "AdminGroup", NULL);
        }
        (void) sd_notify(/* unset_environment= */ false, "READY=1");
        manager_set_status(m);
        return 0;
}
