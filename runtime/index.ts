// runtime/: runs job workloads on this machine. The Runtime port (owned here, used by node/) and its
// adapters: the embedded process runtime and the Docker runtime, both checkpointing through CRIU.
export * from './runtime.ts'
export { ProcessRuntime, defaultProcessRuntimeLimits, type ProcessRuntimeInit, type ProcessRuntimeComponents, type ProcessRuntimeLimits } from './process-runtime.ts'
export { DockerRuntime, defaultDockerRuntimeLimits, type DockerRuntimeInit, type DockerRuntimeComponents, type DockerRuntimeLimits } from './docker-runtime.ts'
export { containerCreateOptions, containerWorkDir } from './docker-container-spec.ts'
export { dockerSocketPath, probeDockerEngine, connectDocker, type DockerEngineInfo } from './docker-engine.ts'
export { probeCriu, criuProbeFailedOnThisBoot, criuLimits, type CriuSupport } from './criu.ts'
export { uncheckpointableReasons } from './checkpoint-guard.ts'
export { checkpointLayout, readCheckpointManifest, type CheckpointManifest } from './checkpoint-directory.ts'
export { probeNodeCapabilities, probeCgroupVersion, probeGpus, renderCapabilities, type NodeCapabilities, type CgroupReport, type GpuReport } from './node-capabilities.ts'
export { probePidNamespace, probeParentDeathSignal, procStatFields, processStartTicks, processTree, isDead, livingGroupMembers, type NamespaceSupport, type ParentDeathSupport } from './isolation.ts'
export { cgroupLimits, type CgroupSupport } from './cgroups.ts'
export { monotonicNowMs, leaseWatchdogLimits } from './lease-watchdog.ts'
