// What this daemon last heard from each node on the capacity topic (free resources, running jobs,
// when): the soft state `fabric nodes` shows beside the document's registry. The core keeps its own
// table for placement; this one only answers clients. Bounded: the oldest entry makes room.
import type { CapacityGossip, NodeId, Resources } from '../consensus/index.ts'

export const maxNodesHeard = 10_000

export interface HeardNode { lastHeardMs: number; free: Resources; running: number }

export class NodeLiveness {
  readonly #heard = new Map<NodeId, HeardNode>()
  readonly #nodeTimeoutMs: number

  constructor(nodeTimeoutMs: number) {
    this.#nodeTimeoutMs = nodeTimeoutMs
  }

  record(gossip: CapacityGossip, nowMs: number): void {
    this.#heard.delete(gossip.nodeId)
    if (this.#heard.size >= maxNodesHeard) this.#heard.delete(this.#heard.keys().next().value!)
    this.#heard.set(gossip.nodeId, { lastHeardMs: nowMs, free: gossip.free, running: gossip.running })
  }

  heard(nodeId: NodeId): HeardNode | undefined {
    return this.#heard.get(nodeId)
  }

  isAlive(nodeId: NodeId, nowMs: number): boolean {
    const heard = this.#heard.get(nodeId)
    return heard !== undefined && nowMs - heard.lastHeardMs < this.#nodeTimeoutMs
  }
}
