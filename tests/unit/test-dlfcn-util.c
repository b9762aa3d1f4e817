/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dlopen_many_sym(), the way gpupassd opens libkmod, tried on libm (which this test does not link). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "dlfcn-util.h"
#include "macro.h"
#include "tests.h"

/* Declared so that DLSYM_ARG can check its type; no library defines it. */
double gpupass_no_such_symbol(double x);

static DLSYM_PROTOTYPE(sqrt);
static DLSYM_PROTOTYPE(exp);
static DLSYM_PROTOTYPE(gpupass_no_such_symbol);

static void test_missing_library(void) {
        _cleanup_free_ char *message = NULL;
        void *dl = NULL;

        ASSERT_EQ(dlopen_many_sym(&dl, "libgpupass-no-such-library.so.0", &message, DLSYM_ARG(sqrt)), -EOPNOTSUPP);
        ASSERT_TRUE(dl == NULL);
        ASSERT_TRUE(sym_sqrt == NULL);
        /* The operator reads which library, and the dynamic linker's reason. */
        ASSERT_TRUE(strstr(message, "libgpupass-no-such-library.so.0 cannot be loaded: ") == message);
        ASSERT_TRUE(strstr(message, "No such file or directory") != NULL);
}

static void test_missing_symbol_changes_nothing(void) {
        _cleanup_free_ char *message = NULL;
        void *dl = NULL;

        ASSERT_EQ(dlopen_many_sym(&dl, "libm.so.6", &message, DLSYM_ARG(sqrt), DLSYM_ARG(gpupass_no_such_symbol),
                                  DLSYM_ARG(exp)),
                  -ENXIO);
        ASSERT_STREQ(message, "libm.so.6 has no symbol gpupass_no_such_symbol");
        ASSERT_TRUE(dl == NULL);
        ASSERT_TRUE(sym_sqrt == NULL); /* resolved, but not assigned: all or nothing */
        ASSERT_TRUE(sym_exp == NULL);
}

static void test_resolves_once(void) {
        void *dl = NULL, *first;

        ASSERT_EQ(dlopen_many_sym(&dl, "libm.so.6", NULL, DLSYM_ARG(sqrt), DLSYM_ARG(exp)), 0);
        ASSERT_TRUE(dl != NULL);
        ASSERT_TRUE(sym_sqrt(16.0) == 4.0);
        ASSERT_TRUE(sym_exp(0.0) == 1.0);
        first = dl;
        /* Opened already: nothing happens, not even for a symbol that is missing. */
        ASSERT_EQ(dlopen_many_sym(&dl, "libm.so.6", NULL, DLSYM_ARG(gpupass_no_such_symbol)), 0);
        ASSERT_TRUE(dl == first);
}

int main(void) {
        test_missing_library();
        test_missing_symbol_changes_nothing();
        test_resolves_once();
        return 0;
}
