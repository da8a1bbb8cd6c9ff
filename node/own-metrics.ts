// This daemon's own metrics (jobs, RSS, heap, load, inbox, core refusals, client requests, snapshot
// bytes served), read from its counters when asked: published on the metrics topic every
// metricsPublishIntervalMs (metrics-gossip.ts) and answered to `fabric nodes` (a node does not hear
// its own gossip).
import { loadavg } from 'node:os'
import type { NodeId, Peer } from '../consensus/index.ts'
import type { ClientProtocol } from './client-protocol.ts'
import type { Clock } from './clock.ts'
import type { CoreDriver } from './core-driver.ts'
import { metricsPublishIntervalMs } from './metrics-gossip.ts'
import type { SnapshotKeeper } from './snapshot-keeper.ts'
import type { NodeMetrics } from './wire.ts'

export interface OwnMetricsInit {
  nodeId: NodeId
  clock: Clock
  driver: CoreDriver
  peer(): Peer | null
  clientProtocol(): ClientProtocol | null
  snapshots(): SnapshotKeeper | null
}

export class OwnMetrics {
  readonly #init: OwnMetricsInit
  #seq = 0
  #timer: NodeJS.Timeout | null = null

  constructor(init: OwnMetricsInit) {
    this.#init = init
  }

  /** This daemon's metrics now, from its own counters. */
  now(): NodeMetrics {
    const { nodeId, clock, driver } = this.#init
    const peer = this.#init.peer()
    const memory = process.memoryUsage()
    const client = this.#init.clientProtocol()?.counters
    return {
      nodeId,
      seq: this.#seq,
      atMs: Math.max(0, Math.round(clock.nowMs())),
      runningJobs: peer?.runningJobs().size ?? 0,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      loadAverage1m: loadavg()[0] ?? 0,
      inboxLength: driver.inboxLength,
      inboxDropped: driver.inboxDropped,
      coreRefusedMessages: peer?.droppedMessages ?? 0,
      clientRequestsServed: client?.requests ?? 0,
      clientRequestsRefused: client?.refused ?? 0,
      snapshotBytesServed: this.#init.snapshots()?.bytesServed ?? 0,
    }
  }

  /** Publishes the metrics every metricsPublishIntervalMs, each with the next seq, until stop. */
  start(publish: (metrics: NodeMetrics) => void): void {
    this.#timer = setInterval(() => {
      this.#seq++
      publish(this.now())
    }, metricsPublishIntervalMs)
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }
}
