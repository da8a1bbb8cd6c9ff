// One Automerge sync session per partner. Sessions are restarted (their in-flight memory dropped)
// when a message may have been lost, so a lossy link cannot stall the protocol forever.
import * as A from '@automerge/automerge'
import type { NodeId } from './types.ts'
import type { ClusterDocument, Document } from './cluster-document.ts'

export interface ReceiveResult {
  document: Document
  /** Paths touched by the received changes (from Automerge's patches). */
  touchedPaths: A.Prop[][]
}

export class SyncSessions {
  readonly #states = new Map<NodeId, A.SyncState>()
  readonly #maxSessions: number

  constructor(maxSessions: number) {
    this.#maxSessions = maxSessions
  }

  #state(peer: NodeId): A.SyncState {
    let state = this.#states.get(peer)
    if (state === undefined) {
      if (this.#states.size >= this.#maxSessions) throw new Error(`sync sessions are limited to ${this.#maxSessions}`)
      state = A.initSyncState()
      this.#states.set(peer, state)
    }
    return state
  }

  generate(document: Document, peer: NodeId): Uint8Array | null {
    const [next, message] = A.generateSyncMessage(document, this.#state(peer))
    this.#states.set(peer, next)
    return message
  }

  receive(document: Document, peer: NodeId, data: Uint8Array): ReceiveResult {
    const touchedPaths: A.Prop[][] = []
    const [next, state] = A.receiveSyncMessage<ClusterDocument>(document, this.#state(peer), data, {
      patchCallback: (patches) => {
        for (const patch of patches) touchedPaths.push(patch.path)
      },
    })
    this.#states.set(peer, state)
    return { document: next, touchedPaths }
  }

  /** Forget what is in flight (kept: the heads both sides are known to share). */
  restart(peer: NodeId): void {
    const state = this.#states.get(peer)
    if (state !== undefined) this.#states.set(peer, A.decodeSyncState(A.encodeSyncState(state)))
  }

  /** True when the partner's last known heads equal ours (nothing left to exchange). */
  inSync(document: Document, peer: NodeId): boolean {
    const state = this.#states.get(peer)
    if (state === undefined) return false
    const theirs = state.theirHeads
    if (theirs === undefined || theirs === null) return false
    const ours = A.getHeads(document)
    return theirs.length === ours.length && theirs.every((head) => ours.includes(head))
  }

  drop(peer: NodeId): void {
    this.#states.delete(peer)
  }
}

