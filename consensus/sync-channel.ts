// Ordering of sync messages between two peers: each sender numbers its messages within an epoch (its
// incarnation, new at every boot), and a receiver accepts each message once and in order. A sender
// that restarted opens a new epoch, and the receiver then restarts its sync session with it; a late
// message of an epoch the sender has left is dropped. Epochs are compared for equality only, never
// by size, so a restart whose clock runs behind the previous boot's is still heard.
import type { NodeId } from './types.ts'

export interface ChannelStamp { epoch: string; seq: number }

/** Epochs a sender left that are still recognized (their late messages dropped). */
const retiredEpochsKept = 4

interface PeerChannel { epoch: string; seq: number; retired: string[] }

export class SyncChannel {
  readonly #epoch: string
  readonly #maxPeersTracked: number
  #seq = 0
  readonly #received = new Map<NodeId, PeerChannel>()

  constructor(epoch: string, maxPeersTracked: number) {
    this.#epoch = epoch
    this.#maxPeersTracked = maxPeersTracked
  }

  /** The stamp of the next message this node sends. */
  next(): ChannelStamp { return { epoch: this.#epoch, seq: ++this.#seq } }

  /** The epoch (incarnation) `peer`'s latest accepted message came in, if any. */
  epochOf(peer: NodeId): string | undefined { return this.#received.get(peer)?.epoch }

  /** 'drop' for a duplicate, late or untracked message; 'reopened' when the sender restarted. */
  accept(from: NodeId, channel: ChannelStamp): 'drop' | 'accept' | 'reopened' {
    const last = this.#received.get(from)
    if (last === undefined) {
      if (this.#received.size >= this.#maxPeersTracked) return 'drop'
      this.#received.set(from, { epoch: channel.epoch, seq: channel.seq, retired: [] })
      return 'accept'
    }
    if (channel.epoch === last.epoch) {
      if (channel.seq <= last.seq) return 'drop'
      last.seq = channel.seq
      return 'accept'
    }
    if (last.retired.includes(channel.epoch)) return 'drop'
    last.retired.push(last.epoch)
    if (last.retired.length > retiredEpochsKept) last.retired.shift()
    last.epoch = channel.epoch
    last.seq = channel.seq
    return 'reopened'
  }
}
