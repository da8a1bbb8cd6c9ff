// The addresses topic: every Shuttle announces where it listens, on a signed-topic channel
// (signed-topic.ts: the message must name the node that signed it, so no one can announce
// addresses for another node; admission; stale by gossipsub's seqno). Peer discovery keeps the
// addresses of members it hears and dials them there, without a DHT walk per member.
import type { GossipSub } from '@libp2p/gossipsub'
import type { Logger } from './logger.ts'
import { SignedTopicChannel, type GossipBudget, type SignedTopicCodec } from './signed-topic.ts'
import { decodeAddressGossip, encodeAddressGossip, type AddressGossip } from './wire.ts'

export const addressesTopic = 'fabric/addresses/1'

export const addressesCodec: SignedTopicCodec<AddressGossip> = { topic: addressesTopic, encode: encodeAddressGossip, decode: decodeAddressGossip }

/** A node announces its addresses every addressAnnounceIntervalMs (10 s, peer-discovery.ts): a burst of 5, then 1 a second. */
export const addressGossipBudget: GossipBudget = { burst: 5, perSecond: 1 }

export interface AddressGossipComponents {
  pubsub: GossipSub
  logger: Logger
  onAddresses(gossip: AddressGossip): void
  /** Admission: is this signer a node of the mesh? (absent: everyone is). */
  accept?(signer: string): boolean
  /** For the budget (default: performance.now). */
  nowMs?(): number
}

export class AddressGossipChannel extends SignedTopicChannel<AddressGossip> {
  constructor(components: AddressGossipComponents) {
    const { onAddresses, ...rest } = components
    super(addressesCodec, { ...rest, onMessage: onAddresses }, addressGossipBudget)
  }
}
