/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <libkmod.h>

#include "dlfcn-util.h"

/*
 * libkmod, dlopen()ed on first use. Only loading vfio-pci needs it, and on a host where modules-load.d
 * already loaded the module, never: linked in, it and libcrypto (its module-signature code) cost an idle
 * gpupassd 1.5 MiB of RSS, 0.4 MiB of it private relocations. libkmod.h is used at build time only.
 */
#define LIBKMOD_SONAME "libkmod.so.2"

extern DLSYM_PROTOTYPE(kmod_new);
extern DLSYM_PROTOTYPE(kmod_unref);
extern DLSYM_PROTOTYPE(kmod_module_new_from_name);
extern DLSYM_PROTOTYPE(kmod_module_probe_insert_module);
extern DLSYM_PROTOTYPE(kmod_module_unref);

/* Loads libkmod.so.2 once (thread-safe: bind jobs run on worker threads). On failure *ret_message names
 * the library and the dynamic linker's reason; a later call tries again (libkmod may have been
 * installed in between). */
int dlopen_libkmod(char **ret_message);
