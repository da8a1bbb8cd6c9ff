// Which non-voters a voter serves downstream: each non-voter is homed on one voter by hash, so the
// document reaches every node without each voter syncing the whole mesh. Cached per committee.
import { forEachNode, shardOf, type Document } from './cluster-document.ts'
import { committeeVoters } from './committee.ts'
import type { NodeId } from './types.ts'

export class ServedNonVoters {
  #cache: { key: string; served: NodeId[] } | null = null

  /** The committee or the node set changed: compute afresh next time. */
  invalidate(): void { this.#cache = null }

  /** The non-voters `self` serves (none when it is not a voter). */
  of(document: Document, self: NodeId): NodeId[] {
    const voters = committeeVoters(document)
    const key = voters.join(',')
    if (this.#cache !== null && this.#cache.key === key) return this.#cache.served
    const index = voters.indexOf(self)
    const served: NodeId[] = []
    if (index >= 0) {
      forEachNode(document, (nodeId) => {
        if (voters.includes(nodeId)) return
        if (parseInt(shardOf(nodeId + '/home'), 16) % voters.length === index) served.push(nodeId)
      })
    }
    this.#cache = { key, served }
    return served
  }
}
