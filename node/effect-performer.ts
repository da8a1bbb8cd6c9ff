// What each of the core's effects does in the daemon, performed in the order the core gave them:
// persist awaited first (and compacted now and then), so nothing is sent before it is durable; sends,
// capacity gossip, archives, jobs to the runtime (job-runner.ts), checkpoints taken off the step loop
// (snapshot-keeper.ts; the outcome comes back as an input); events to the logs, to the requests
// waiting on them (core-requests.ts) and to listeners. core-driver.ts decides when.
import type { Peer, PeerEffect, PeerEvent } from '../consensus/index.ts'
import type { CapacityGossipChannel } from './capacity-gossip.ts'
import type { ProgressFrame } from './client-wire.ts'
import type { ConsensusTransport } from './consensus-transport.ts'
import type { PendingInput } from './core-driver.ts'
import type { CoreRequests } from './core-requests.ts'
import type { JobRunner } from './job-runner.ts'
import type { Logger } from './logger.ts'
import type { MachineFree } from './machine-resources.ts'
import type { SnapshotKeeper } from './snapshot-keeper.ts'
import { checkpointPolicyOf } from './snapshot-policy.ts'
import type { ConsensusStore } from './store.ts'
import type { RestoreProgressHub } from './transfer-progress.ts'

/** Increments in the store before it is compacted online into one saved document. */
export const compactEveryIncrements = 1_000

export interface EffectPerformerInit {
  peer: Peer
  store: ConsensusStore
  transport: ConsensusTransport
  capacity: CapacityGossipChannel
  /** What the machine has free now: caps the free resources the capacity gossip announces. */
  machineFree: MachineFree
  jobs: JobRunner
  snapshots: SnapshotKeeper
  /** Who follows the restore of a replica on this node. */
  restoreProgress: RestoreProgressHub
  requests: CoreRequests
  /** Called with every event the core reports. */
  eventListeners: ReadonlySet<(event: PeerEvent) => void>
  /** Queues an input for the core (a checkpoint's outcome). */
  enqueue(make: PendingInput): boolean
  logger: Logger
}

export class EffectPerformer {
  readonly #init: EffectPerformerInit

  constructor(init: EffectPerformerInit) {
    this.#init = init
  }

  async perform(effects: readonly PeerEffect[]): Promise<void> {
    const { peer, store, jobs, logger } = this.#init
    let archivedWritten = false
    for (const effect of effects) {
      switch (effect.kind) {
        case 'persist':
          // A voter's writes are always synced: its acknowledgements make commits (--no-sync-writes spares non-voters only).
          await store.persist(effect.state, peer.voters().includes(peer.id) || (peer.pendingVoters()?.includes(peer.id) ?? false))
          if (store.incrementCount >= compactEveryIncrements) await store.compact(peer.document)
          break
        case 'send':
          this.#init.transport.send(effect.to, effect.message)
          break
        case 'publish-capacity':
          this.#init.capacity.publish({ ...effect.gossip, free: this.#init.machineFree.cap(effect.gossip.free) })
          break
        case 'archive-job':
          // The step's finished jobs are archived in one write, where the first of them comes.
          if (!archivedWritten) {
            archivedWritten = true
            await store.archiveAll(effects.flatMap((other) => (other.kind === 'archive-job' ? [other.job] : [])))
          }
          jobs.forget(effect.job.id)
          void this.#init.snapshots.release(effect.job.id).catch((error: unknown) => logger.warn('snapshot-release-failed', { jobId: effect.job.id, error }))
          break
        case 'start-job': {
          // The document holds the job's record now; the launch itself does not hold up the core.
          logger.info('start-job', { jobId: effect.jobId, term: effect.term, seq: effect.seq, restoreFrom: effect.restoreFrom?.cid ?? null })
          const from = effect.restoreFrom
          const snapshots = this.#init.snapshots
          const restoreProgress = (frame: ProgressFrame): void => this.#init.restoreProgress.publish(effect.jobId, frame)
          jobs.start(effect, peer.document, from === null ? undefined : () => snapshots.restore(effect.jobId, from.cid, [from.node, ...from.holders], restoreProgress))
          break
        }
        case 'checkpoint-job':
          this.#checkpoint(effect)
          break
        case 'stop-job':
          logger.info('stop-job', { jobId: effect.jobId, reason: effect.reason })
          jobs.stop(effect.jobId, effect.reason)
          break
        case 'lease':
          jobs.setLease(effect.untilMs)
          break
        case 'event': {
          const event = effect.event
          if (event.kind === 'message-dropped') logger.debug('core-dropped-message', event)
          else logger.info(event.kind, event)
          this.#init.requests.heard(event)
          for (const listener of this.#init.eventListeners) {
            try {
              listener(event)
            } catch (error) {
              logger.error('event-listener-failed', { error })
            }
          }
          break
        }
      }
    }
  }

  /** Takes the checkpoint off the step loop; its outcome comes back as an input. */
  #checkpoint(effect: Extract<PeerEffect, { kind: 'checkpoint-job' }>): void {
    const { jobId, stop } = effect
    const { jobs, enqueue, logger } = this.#init
    const policy = checkpointPolicyOf(this.#init.peer.document, jobId)
    if (stop) jobs.endsWithCheckpoint(jobId)
    logger.info('checkpoint-job', { jobId, stop, reason: effect.reason })
    const waiters = this.#init.requests.checkpoints
    this.#init.snapshots.checkpoint(jobId, { stop, replicas: policy.replicas, keep: policy.keep, onProgress: (frame) => waiters.progress(jobId, frame) }).then(
      (made) => {
        enqueue((nowMs) => ({ kind: 'job-checkpointed', nowMs, jobId, cid: made.cid, stopped: stop, holders: made.holders, sizeBytes: made.sizeBytes, chunks: made.chunks }))
        waiters.made(jobId, made)
      },
      (error: Error) => {
        logger.warn('checkpoint-failed', { jobId, reason: error.message })
        waiters.failed(jobId, error.message)
        if (stop) jobs.checkpointFailed(jobId)
        enqueue((nowMs) => ({ kind: 'job-checkpoint-failed', nowMs, jobId, reason: error.message }))
      },
    )
  }
}
