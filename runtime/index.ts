// runtime/: runs job workloads on this machine. The Runtime port (owned here, used by node/) and its
// adapters: the embedded process runtime now; Docker and CRIU checkpoints follow.
export * from './runtime.ts'
export { ProcessRuntime, defaultProcessRuntimeLimits, type ProcessRuntimeInit, type ProcessRuntimeComponents, type ProcessRuntimeLimits } from './process-runtime.ts'
export { probePidNamespace, probeParentDeathSignal, processStartTicks, processTree, isDead, livingGroupMembers, type NamespaceSupport, type ParentDeathSupport } from './isolation.ts'
export { cgroupLimits, type CgroupSupport } from './cgroups.ts'
