#!/bin/bash
# vfio-pci not loaded, only on disk (fixtures/module.ini): the first Prepare loads it through libkmod, which
# gpupassd opens only then (dlopen): an idle agent never maps libkmod or libcrypto. Without a loadable
# libkmod.so.2 the Prepare fails with BindFailed naming the library.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent

A=0000:3b:00.0
AUDIO=0000:3b:00.1

mapped() { # library-name-part -> yes|no: is it mapped into the agent now
        if grep -q "/$1" "/proc/$AGENT_PID/maps"; then echo yes; else echo no; fi
}

assert_eq "no" "$([ -d /sys/bus/pci/drivers/vfio-pci ] && echo yes || echo no)" "vfio-pci is not registered at start"
assert_eq "no" "$([ -d /sys/module/vfio_pci ] && echo yes || echo no)" "module vfio_pci is not loaded at start"
assert_eq "no" "$(mapped libkmod.so)" "the started agent has not mapped libkmod"
assert_eq "no" "$(mapped libcrypto.so)" "nor libcrypto (libkmod's dependency)"

out=$(ctl prepare $A 2>&1) && pass "Prepare of $A with vfio-pci not loaded" || fail "Prepare: $out"
assert_eq "live" "$(cat /sys/module/vfio_pci/initstate 2>&1)" "the agent loaded module vfio_pci (finit_module of the .ko libkmod found in modules.dep.bin)"
assert_eq "vfio-pci" "$(sysfs_driver $A)" "the GPU is on vfio-pci"
assert_eq "vfio-pci" "$(sysfs_driver $AUDIO)" "its audio companion is on vfio-pci"
assert_eq '"vfio"' "$(gpu_prop $A State)" "State vfio"
assert_eq "yes" "$(mapped libkmod.so)" "libkmod was opened for the load"

out=$(ctl return $A 2>&1) && pass "ReturnToHost" || fail "return: $out"
assert_eq "nouveau" "$(sysfs_driver $A)" "the GPU is back on nouveau"

# A host without libkmod: the agent starts and discovers as before; only the module load fails, naming
# the library. The library is hidden in a mount namespace of the agent alone.
stop_agent
simctl driver-unload vfio-pci
assert_eq "no" "$([ -d /sys/module/vfio_pci ] && echo yes || echo no)" "driver-unload unloaded module vfio_pci"
if unshare -m true 2>/dev/null; then
        libdir=$(dirname "$(readlink -f "$(ldd "$GPUPASSD" | awk '$1 == "libc.so.6" {print $3}')")")
        mkdir "$TEST_DIR/orig" "$TEST_DIR/libdir"
        cat >"$TEST_DIR/no-libkmod" <<EOS
#!/bin/bash
# gpupassd in a mount namespace where $libdir has no libkmod*: every other file there is a link to the
# original, which stays reachable at orig/. unshare and exec keep the pid.
set -e
[ -n "\${IN_NS:-}" ] || IN_NS=1 exec unshare -m --propagation private "\$0"
mount --bind "$libdir" "$TEST_DIR/orig"
for f in "$TEST_DIR"/orig/*; do
        case \${f##*/} in libkmod*) ;; *) ln -s "\$f" "$TEST_DIR/libdir/\${f##*/}" ;; esac
done
mount --bind "$TEST_DIR/libdir" "$libdir"
exec "$GPUPASSD"
EOS
        chmod +x "$TEST_DIR/no-libkmod"
        GPUPASSD=$TEST_DIR/no-libkmod
        start_agent
        assert_eq '"host"' "$(gpu_prop $A State)" "the agent without libkmod discovers the GPU"
        expect_error org.gpupass.Error.BindFailed "module vfio-pci cannot be loaded without libkmod: libkmod.so.2 cannot be loaded: libkmod.so.2: cannot open shared object file" \
                -- "$(gpu_path $A)" org.gpupass.agent1.Gpu Prepare
        assert_eq "nouveau" "$(sysfs_driver $A)" "the GPU stays on nouveau"
        assert_eq "no" "$([ -d /sys/module/vfio_pci ] && echo yes || echo no)" "nothing was loaded"
else
        echo "ok - the missing-libkmod case # SKIP no mount namespaces here (unshare -m)"
fi
finish
