/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The public D-Bus contract of gpupass: bus names, object paths, interfaces and error names.
 * Clients are written against these strings; change them only together with README's API section.
 */

#define GPUPASS_AGENT_BUS_NAME          "org.gpupass.agent1"
#define GPUPASS_AGENT_MANAGER_PATH      "/org/gpupass/agent1"
#define GPUPASS_AGENT_GPU_PREFIX        "/org/gpupass/agent1/gpu"
#define GPUPASS_AGENT_MANAGER_IFACE     "org.gpupass.agent1.Manager"
#define GPUPASS_AGENT_GPU_IFACE         "org.gpupass.agent1.Gpu"

#define GPUPASS_ERROR_NOT_FOUND         "org.gpupass.Error.NotFound"
#define GPUPASS_ERROR_BUSY              "org.gpupass.Error.Busy"
#define GPUPASS_ERROR_NOT_OWNER         "org.gpupass.Error.NotOwner"
#define GPUPASS_ERROR_GROUP_NOT_VIABLE  "org.gpupass.Error.GroupNotViable"
#define GPUPASS_ERROR_NO_IOMMU          "org.gpupass.Error.NoIommu"
#define GPUPASS_ERROR_BOOT_DEVICE       "org.gpupass.Error.BootDevice"
#define GPUPASS_ERROR_IN_MAINTENANCE    "org.gpupass.Error.InMaintenance"
#define GPUPASS_ERROR_INVALID_ARGUMENT  "org.gpupass.Error.InvalidArgument"
#define GPUPASS_ERROR_ACCESS_DENIED     "org.gpupass.Error.AccessDenied"
#define GPUPASS_ERROR_RESET_FAILED      "org.gpupass.Error.ResetFailed"
/* Added beyond the sketch: a kernel interaction (sysfs write, module load) failed; the message says which. */
#define GPUPASS_ERROR_BIND_FAILED       "org.gpupass.Error.BindFailed"
/* Added: no VFIO node for the group (/dev/vfio/N); the kernel has no VFIO or the group is not on vfio-pci. */
#define GPUPASS_ERROR_VFIO_UNAVAILABLE  "org.gpupass.Error.VfioUnavailable"
/* Added: the state file could not be written; the change was not made. */
#define GPUPASS_ERROR_STATE_NOT_SAVED   "org.gpupass.Error.StateNotSaved"

/* The signature of one ListGpus entry; see README "D-Bus API". */
#define GPUPASS_GPU_ENTRY_SIGNATURE     "(osssssssiiasbbs)"

#define GPUPASS_CLUSTER_BUS_NAME        "org.gpupass.cluster1"
#define GPUPASS_CLUSTER_MANAGER_PATH    "/org/gpupass/cluster1"
#define GPUPASS_CLUSTER_MANAGER_IFACE   "org.gpupass.cluster1.Manager"
/* One object per host and per VM; the last path element is the name or UUID, sd_bus_path_encode'd. */
#define GPUPASS_CLUSTER_HOST_PREFIX     "/org/gpupass/cluster1/host"
#define GPUPASS_CLUSTER_HOST_IFACE      "org.gpupass.cluster1.Host"
#define GPUPASS_CLUSTER_VM_PREFIX       "/org/gpupass/cluster1/vm"
#define GPUPASS_CLUSTER_VM_IFACE        "org.gpupass.cluster1.Vm"
#define GPUPASS_ERROR_NO_HOST_AVAILABLE "org.gpupass.Error.NoHostAvailable"
#define GPUPASS_ERROR_NOT_SUPPORTED_WITH_GPU "org.gpupass.Error.NotSupportedWithGpu"
#define GPUPASS_ERROR_VM_NOT_OFF        "org.gpupass.Error.VmNotOff"
#define GPUPASS_ERROR_NEEDS_RECONFIGURATION "org.gpupass.Error.NeedsReconfiguration"
#define GPUPASS_ERROR_HOST_UNREACHABLE  "org.gpupass.Error.HostUnreachable"
/* The host's VM runtime (libvirt) refused to start or stop the VM's domain; the message has libvirt's error. */
#define GPUPASS_ERROR_RUNTIME_FAILED    "org.gpupass.Error.RuntimeFailed"
