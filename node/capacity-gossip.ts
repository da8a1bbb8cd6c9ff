// The capacity topic: CapacityGossip from the core, carried by a signed-topic channel
// (signed-topic.ts: schema and size, signer = gossip.nodeId, admission, stale by gossipsub's
// signed sequence number) and handed to the core only once all of that has been checked.
import type { GossipSub } from '@libp2p/gossipsub'
import type { CapacityGossip } from '../consensus/index.ts'
import type { Logger } from './logger.ts'
import { SignedTopicChannel, type GossipBudget, type SignedTopicCodec } from './signed-topic.ts'
import { decodeCapacityGossip, encodeCapacityGossip } from './wire.ts'

export const capacityTopic = 'fabric/capacity/1'

export const capacityCodec: SignedTopicCodec<CapacityGossip> = { topic: capacityTopic, encode: encodeCapacityGossip, decode: decodeCapacityGossip }

/** A node publishes its capacity every capacityIntervalMs (1 s) and gossip may bunch a few: a burst of 10, then 4 a second; a flood past it is ignored (13,000 valid messages from one node once moved the term). */
export const capacityGossipBudget: GossipBudget = { burst: 10, perSecond: 4 }

export interface CapacityGossipComponents {
  pubsub: GossipSub
  logger: Logger
  onGossip(gossip: CapacityGossip): void
  /** Admission: is this signer a node of the mesh? (absent: everyone is). Gossip of others is ignored. */
  accept?(signer: string): boolean
  /** For the budget (default: performance.now). */
  nowMs?(): number
}

export class CapacityGossipChannel extends SignedTopicChannel<CapacityGossip> {
  constructor(components: CapacityGossipComponents) {
    const { onGossip, ...rest } = components
    super(capacityCodec, { ...rest, onMessage: onGossip }, capacityGossipBudget)
  }
}
