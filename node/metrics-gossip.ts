// The metrics topic: every Shuttle publishes what an operator wants to see of it (jobs, memory,
// load, inbox, refusals, requests, snapshot bytes) every metricsPublishIntervalMs on a signed-topic
// channel (signed-topic.ts), and keeps the latest heard per node for `fabric nodes`. Soft state
// for people: the core never sees it.
import type { GossipSub } from '@libp2p/gossipsub'
import type { Logger } from './logger.ts'
import { SignedTopicChannel, type GossipBudget, type SignedTopicCodec } from './signed-topic.ts'
import { decodeNodeMetrics, encodeNodeMetrics, type NodeMetrics } from './wire.ts'

export const metricsTopic = 'fabric/metrics/1'
/** How often a Shuttle publishes its own metrics. */
export const metricsPublishIntervalMs = 5_000
/** Nodes whose latest metrics are kept (the least recently heard is dropped first). */
export const maxNodesWithMetrics = 10_000

export const metricsCodec: SignedTopicCodec<NodeMetrics> = { topic: metricsTopic, encode: encodeNodeMetrics, decode: decodeNodeMetrics }

/** A node publishes its metrics every metricsPublishIntervalMs (5 s): a burst of 5, then 1 a second. */
export const metricsGossipBudget: GossipBudget = { burst: 5, perSecond: 1 }

export interface MetricsGossipComponents {
  pubsub: GossipSub
  logger: Logger
  onMetrics(metrics: NodeMetrics): void
  /** Admission: is this signer a node of the mesh? (absent: everyone is). */
  accept?(signer: string): boolean
  /** For the budget (default: performance.now). */
  nowMs?(): number
}

export class MetricsGossipChannel extends SignedTopicChannel<NodeMetrics> {
  constructor(components: MetricsGossipComponents) {
    const { onMetrics, ...rest } = components
    super(metricsCodec, { ...rest, onMessage: onMetrics }, metricsGossipBudget)
  }
}

export interface HeardMetrics { metrics: NodeMetrics; heardAtMs: number }

/** The latest metrics heard from each node, bounded. */
export class NodeMetricsBook {
  readonly #heard = new Map<string, HeardMetrics>()

  record(metrics: NodeMetrics, nowMs: number): void {
    this.#heard.delete(metrics.nodeId) // re-insert: the map's order is least recently heard first
    if (this.#heard.size >= maxNodesWithMetrics) this.#heard.delete(this.#heard.keys().next().value!)
    this.#heard.set(metrics.nodeId, { metrics, heardAtMs: nowMs })
  }

  latest(nodeId: string): HeardMetrics | undefined {
    return this.#heard.get(nodeId)
  }

  get size(): number {
    return this.#heard.size
  }
}
