/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>

#include "kmod-util.h"

static void *libkmod_dl;

DLSYM_PROTOTYPE(kmod_new);
DLSYM_PROTOTYPE(kmod_unref);
DLSYM_PROTOTYPE(kmod_module_new_from_name);
DLSYM_PROTOTYPE(kmod_module_probe_insert_module);
DLSYM_PROTOTYPE(kmod_module_unref);

int dlopen_libkmod(char **ret_message) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        int r;

        pthread_mutex_lock(&lock);
        r = dlopen_many_sym(&libkmod_dl, LIBKMOD_SONAME, ret_message,
                            DLSYM_ARG(kmod_new),
                            DLSYM_ARG(kmod_unref),
                            DLSYM_ARG(kmod_module_new_from_name),
                            DLSYM_ARG(kmod_module_probe_insert_module),
                            DLSYM_ARG(kmod_module_unref));
        pthread_mutex_unlock(&lock);
        return r;
}
