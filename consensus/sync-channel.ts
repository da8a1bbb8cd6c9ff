// Ordering of sync messages between two peers: each sender numbers its messages within an epoch (its
// start time), and a receiver accepts each message once and in order. A sender that restarted opens a
// new epoch, and the receiver then restarts its sync session with it.
import type { NodeId } from './types.ts'

export interface ChannelStamp { epoch: number; seq: number }

export class SyncChannel {
  readonly #epoch: number
  readonly #maxPeersTracked: number
  #seq = 0
  readonly #received = new Map<NodeId, ChannelStamp>()

  constructor(epoch: number, maxPeersTracked: number) {
    this.#epoch = epoch
    this.#maxPeersTracked = maxPeersTracked
  }

  /** The stamp of the next message this node sends. */
  next(): ChannelStamp { return { epoch: this.#epoch, seq: ++this.#seq } }

  /** 'drop' for a duplicate, late or untracked message; 'reopened' when the sender restarted. */
  accept(from: NodeId, channel: ChannelStamp): 'drop' | 'accept' | 'reopened' {
    const last = this.#received.get(from)
    if (last !== undefined && (channel.epoch < last.epoch || (channel.epoch === last.epoch && channel.seq <= last.seq))) return 'drop'
    if (last === undefined && this.#received.size >= this.#maxPeersTracked) return 'drop'
    this.#received.set(from, channel)
    return last !== undefined && channel.epoch > last.epoch ? 'reopened' : 'accept'
  }
}
