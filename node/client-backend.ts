// What the client protocol reads and asks of a daemon (client-service.ts's ClientBackend), from the
// Shuttle's requests and the parts it holds: the core's document and views, the store's archive, the
// local runs, this node's own free resources and metrics, and passing a request on to another node.
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Peer, Resources } from '../consensus/index.ts'
import { meshAddresses } from './admission-requests.ts'
import { maxBootstrapAddresses } from './bootstrap-dialer.ts'
import { clientFrames } from './client-connection.ts'
import type { ClientBackend } from './client-service.ts'
import type { Clock } from './clock.ts'
import type { JobRunner } from './job-runner.ts'
import type { MachineFree } from './machine-resources.ts'
import type { NodeMetricsBook } from './metrics-gossip.ts'
import type { NodeLiveness } from './node-liveness.ts'
import type { OwnMetrics } from './own-metrics.ts'
import type { Shuttle } from './shuttle.ts'
import type { ConsensusStore } from './store.ts'

/** The Shuttle's requests the client protocol passes on as they are. */
export type ShuttleRequests = Pick<Shuttle, 'nodeId' | 'status' | 'counters' | 'submit' | 'cancel' | 'migrate' | 'drain' | 'admit' | 'checkpointNow' | 'onRestoreProgress' | 'onCoreEvent'>

export interface ClientBackendParts {
  peer(): Peer | null
  clock: Clock
  libp2p: Libp2p
  store: ConsensusStore
  jobs: JobRunner
  /** What this node offers (its free resources are this less what runs here). */
  capacity: Resources
  machineFree: MachineFree
  liveness: NodeLiveness
  ownMetrics: OwnMetrics
  metricsHeard: NodeMetricsBook
}

export function clientBackendOf(shuttle: ShuttleRequests, parts: ClientBackendParts): ClientBackend {
  const peer = (): Peer => {
    const built = parts.peer()
    if (built === null) throw new Error('the Shuttle has not started')
    return built
  }
  const { jobs, store, libp2p } = parts
  return {
    nodeId: shuttle.nodeId,
    nowMs: () => parts.clock.nowMs(),
    status: () => shuttle.status(),
    document: () => peer().document,
    submit: (job, replay) => shuttle.submit(job, replay),
    cancel: (jobId, replay) => shuttle.cancel(jobId, replay),
    migrate: (jobId, to, where, replay) => shuttle.migrate(jobId, to, where, replay),
    drain: (nodeId, undo, replay) => shuttle.drain(nodeId, undo, replay),
    relay: (nodeId, frame, signal) => clientFrames(libp2p, peerIdFromString(nodeId), { kind: 'relay', request: frame }, { signal }),
    checkpointNow: (jobId, onProgress, signal) => shuttle.checkpointNow(jobId, onProgress, signal),
    onRestoreProgress: (jobId, listener) => shuttle.onRestoreProgress(jobId, listener),
    explain: (jobId) => peer().explain(jobId),
    leaderCommittedSeq: () => (peer().role === 'leader' ? peer().committedSeq : null),
    onCoreEvent: (listener) => shuttle.onCoreEvent(listener),
    counters: () => shuttle.counters(),
    archivedJob: (jobId) => store.archivedJob(jobId),
    archivedJobs: (limit) => store.archivedJobs(limit),
    liveness: parts.liveness,
    own: () => {
      const running = peer().runningJobs()
      let cpuMillis = parts.capacity.cpuMillis
      let memoryMiB = parts.capacity.memoryMiB
      for (const run of running.values()) {
        cpuMillis -= run.demand.cpuMillis
        memoryMiB -= run.demand.memoryMiB
      }
      memoryMiB = Math.min(memoryMiB, parts.machineFree.memoryMiB())
      return { free: { cpuMillis, memoryMiB }, running: running.size, metrics: parts.ownMetrics.now() }
    },
    metricsHeard: parts.metricsHeard,
    localJob: (jobId) => jobs.local(jobId),
    localLogs: (jobId, options) => jobs.logs(jobId, options),
    forward: (nodeId, body, signal) => clientFrames(libp2p, peerIdFromString(nodeId), body, { signal, forwarded: true }),
    admission: { nodeId: shuttle.nodeId, meshId: store.genesisHash, document: () => peer().document, addresses: () => meshAddresses(libp2p, peer().voters(), maxBootstrapAddresses), admit: (peerId, grant) => shuttle.admit(peerId, grant) },
  }
}
