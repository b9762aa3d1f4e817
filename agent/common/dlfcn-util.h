/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Optional libraries loaded at the moment they are needed, after systemd's dlfcn-util: a library that is
 * rarely used (libkmod: only when vfio-pci has to be loaded) is not mapped, relocated and paid for in RSS
 * by an idle daemon. The header of the library is still used at build time, so the prototypes are
 * checked: DLSYM_PROTOTYPE(f) declares `sym_f` with the type of f.
 *
 *   dlopen_many_sym(&dl, "libkmod.so.2", &message, DLSYM_ARG(kmod_new), DLSYM_ARG(kmod_unref));
 */
#define _sentinel_ __attribute__((sentinel))

#define DLSYM_PROTOTYPE(symbol) typeof(symbol) *sym_##symbol

/* The address of the pointer and the name of the symbol; the (void(**)(void)) cast is checked to be a
 * pointer to the right function type first. */
#define DLSYM_ARG(arg) \
        ({ _Static_assert(__builtin_types_compatible_p(typeof(sym_##arg), typeof(&arg)), #arg); &sym_##arg; }), #arg

/* Opens filename (RTLD_NOW|RTLD_NODELETE: it stays, as the pointers into it do) unless *dlp is set, and
 * resolves every symbol. Either all pointers are set and *dlp holds the handle, or nothing changed. Errors:
 * -EOPNOTSUPP when the library cannot be opened, -ENXIO when a symbol is missing; *ret_message (if not
 * NULL) then says which, with the dynamic linker's words. Not thread-safe: callers serialise. */
int dlopen_many_sym_sentinel(void **dlp, const char *filename, char **ret_message, ...) _sentinel_;
#define dlopen_many_sym(dlp, filename, ret_message, ...) \
        dlopen_many_sym_sentinel(dlp, filename, ret_message, __VA_ARGS__, NULL)
