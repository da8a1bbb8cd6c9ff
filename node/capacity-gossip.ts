// The capacity topic: CapacityGossip published on gossipsub (strictly signed) and delivered to
// the core only after its schema, its size, its signer (the gossip must name the node that
// signed it) and its freshness (gossipsub's signed sequence number, monotonic across restarts)
// have been checked. A refused message is neither delivered nor forwarded.
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { CapacityGossip } from '../consensus/index.ts'
import type { Logger } from './logger.ts'
import { decodeCapacityGossip, encodeCapacityGossip } from './wire.ts'

export const capacityTopic = 'fabric/capacity/1'
/** Senders whose latest sequence number is remembered (oldest forgotten first). */
export const maxCapacitySendersTracked = 10_000

export interface CapacityGossipCounters { published: number; delivered: number; refused: number; stale: number; unadmitted: number }

export interface CapacityGossipComponents {
  pubsub: GossipSub
  logger: Logger
  onGossip(gossip: CapacityGossip): void
  /** Admission: is this signer a node of the mesh? (absent: everyone is). Gossip of others is ignored. */
  accept?(signer: string): boolean
}

export class CapacityGossipChannel {
  readonly counters: CapacityGossipCounters = { published: 0, delivered: 0, refused: 0, stale: 0, unadmitted: 0 }
  readonly #components: CapacityGossipComponents
  readonly #latest = new Map<string, bigint>()
  #started = false
  readonly #onMessage = (event: CustomEvent<Message>): void => {
    const message = event.detail
    if (message.topic !== capacityTopic) return
    const decoded = decodeCapacityGossip(message.data)
    if (!decoded.ok) return // the validator already refused it; a late one changes nothing
    this.counters.delivered++
    this.#components.onGossip(decoded.value)
  }

  constructor(components: CapacityGossipComponents) {
    this.#components = components
  }

  start(): void {
    if (this.#started) return
    this.#started = true
    const { pubsub } = this.#components
    pubsub.topicValidators.set(capacityTopic, (peer, message) => this.#validate(peer, message))
    pubsub.addEventListener('message', this.#onMessage)
    pubsub.subscribe(capacityTopic)
  }

  stop(): void {
    if (!this.#started) return
    this.#started = false
    const { pubsub } = this.#components
    pubsub.removeEventListener('message', this.#onMessage)
    pubsub.topicValidators.delete(capacityTopic)
    try {
      pubsub.unsubscribe(capacityTopic)
    } catch {
      // gossipsub already stopped with libp2p
    }
  }

  publish(gossip: CapacityGossip): void {
    if (!this.#started) return
    this.#components.pubsub.publish(capacityTopic, encodeCapacityGossip(gossip)).then(
      () => { this.counters.published++ },
      (error: unknown) => this.#components.logger.debug('publish-failed', { error }),
    )
  }

  #validate(_propagationSource: PeerId, message: Message): TopicValidatorResult {
    if (message.type !== 'signed') return this.#refuse('unsigned message', null)
    const signer = message.from.toString()
    const decoded = decodeCapacityGossip(message.data)
    if (!decoded.ok) return this.#refuse(decoded.reason, signer)
    if (decoded.value.nodeId !== signer) return this.#refuse(`names node ${decoded.value.nodeId} but is signed by ${signer}`, signer)
    // Ignored, not rejected: a node that forwards it may know of an admission this one has not seen yet.
    if (this.#components.accept?.(signer) === false) {
      this.counters.unadmitted++
      return TopicValidatorResult.Ignore
    }
    const latest = this.#latest.get(signer)
    if (latest !== undefined && message.sequenceNumber <= latest) {
      this.counters.stale++
      return TopicValidatorResult.Ignore
    }
    this.#latest.delete(signer) // re-insert: the map's order is least recently heard first
    this.#latest.set(signer, message.sequenceNumber)
    if (this.#latest.size > maxCapacitySendersTracked) this.#latest.delete(this.#latest.keys().next().value!)
    return TopicValidatorResult.Accept
  }

  #refuse(reason: string, signer: string | null): TopicValidatorResult {
    this.counters.refused++
    this.#components.logger.warn('gossip-refused', { topic: capacityTopic, signer, reason })
    return TopicValidatorResult.Reject
  }
}
