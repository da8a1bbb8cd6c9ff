// One gossipsub topic (strictly signed) whose messages each name the node that sent them: the
// capacity topic and the metrics topic are both this channel with their own codec. A message is
// delivered only after its size and schema (the codec's decode), its signer (it must name the node
// that signed it), admission (`accept`) and its freshness (gossipsub's signed sequence number,
// monotonic across restarts) have been checked. A refused message is neither delivered nor forwarded.
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from './logger.ts'
import type { Decoded } from './wire.ts'

/** Senders whose latest sequence number is remembered, per topic (oldest forgotten first). */
export const maxSendersTracked = 10_000

/** What a topic carries: the wire form of its message, decode checking size and schema. */
export interface SignedTopicCodec<T extends { nodeId: string }> {
  topic: string
  encode(value: T): Uint8Array
  decode(bytes: Uint8Array): Decoded<T>
}

export interface SignedTopicCounters { published: number; delivered: number; refused: number; stale: number; unadmitted: number }

export interface SignedTopicComponents<T> {
  pubsub: GossipSub
  logger: Logger
  onMessage(value: T): void
  /** Admission: is this signer a node of the mesh? (absent: everyone is). Messages of others are ignored. */
  accept?(signer: string): boolean
}

export class SignedTopicChannel<T extends { nodeId: string }> {
  readonly counters: SignedTopicCounters = { published: 0, delivered: 0, refused: 0, stale: 0, unadmitted: 0 }
  readonly #codec: SignedTopicCodec<T>
  readonly #components: SignedTopicComponents<T>
  readonly #latest = new Map<string, bigint>()
  #started = false
  readonly #onMessage = (event: CustomEvent<Message>): void => {
    const message = event.detail
    if (message.topic !== this.#codec.topic) return
    const decoded = this.#codec.decode(message.data)
    if (!decoded.ok) return // the validator already refused it; a late one changes nothing
    this.counters.delivered++
    this.#components.onMessage(decoded.value)
  }

  constructor(codec: SignedTopicCodec<T>, components: SignedTopicComponents<T>) {
    this.#codec = codec
    this.#components = components
  }

  get topic(): string {
    return this.#codec.topic
  }

  start(): void {
    if (this.#started) return
    this.#started = true
    const { pubsub } = this.#components
    pubsub.topicValidators.set(this.topic, (peer, message) => this.#validate(peer, message))
    pubsub.addEventListener('message', this.#onMessage)
    pubsub.subscribe(this.topic)
  }

  stop(): void {
    if (!this.#started) return
    this.#started = false
    const { pubsub } = this.#components
    pubsub.removeEventListener('message', this.#onMessage)
    pubsub.topicValidators.delete(this.topic)
    try {
      pubsub.unsubscribe(this.topic)
    } catch {
      // gossipsub already stopped with libp2p
    }
  }

  publish(value: T): void {
    if (!this.#started) return
    this.#components.pubsub.publish(this.topic, this.#codec.encode(value)).then(
      () => { this.counters.published++ },
      (error: unknown) => this.#components.logger.debug('publish-failed', { topic: this.topic, error }),
    )
  }

  #validate(_propagationSource: PeerId, message: Message): TopicValidatorResult {
    if (message.type !== 'signed') return this.#refuse('unsigned message', null)
    const signer = message.from.toString()
    const decoded = this.#codec.decode(message.data)
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
    if (this.#latest.size > maxSendersTracked) this.#latest.delete(this.#latest.keys().next().value!)
    return TopicValidatorResult.Accept
  }

  #refuse(reason: string, signer: string | null): TopicValidatorResult {
    this.counters.refused++
    this.#components.logger.warn('gossip-refused', { topic: this.topic, signer, reason })
    return TopicValidatorResult.Reject
  }
}
