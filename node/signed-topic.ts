// One gossipsub topic (strictly signed) whose messages each name the node that sent them: the
// capacity, metrics and addresses topics are this channel with their own codec and budget. gossipsub
// checks the signature; the validator here then checks, cheapest first: admission of the signer
// (`accept`, before a byte of the payload is decoded), size and schema (the codec's decode), that it
// names the node that signed it, freshness (gossipsub's signed sequence number, monotonic across
// restarts) and the signer's budget (a token bucket: a burst, then a steady rate a few times its
// publishing rate), so no flood of valid messages from one node reaches the core. A refused message
// is neither delivered nor forwarded. Reject (which lowers the sender's gossipsub score wherever
// topic scoring is configured) only for what the signer provably got wrong: unsigned, undecodable,
// naming another node; Ignore for what may be right elsewhere or later: a signer this node does not
// know as a node yet (its admission may not have arrived here), stale, over budget. Refusals are
// counted per kind and logged through a RefusalLog (one line per signer per interval).
// A peer sending its own messages (the signer is the peer it came from) past its budget, or
// unadmitted or stale ones past it, or refused ones past refusalBudget, is graylisted for a while
// (gossip-penalties.ts): gossipsub then drops its RPCs before verifying their signatures, the cost a
// validator cannot save. Messages relayed by another peer never cost the relay a penalty.
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { gossipPenaltiesOf } from './gossip-penalties.ts'
import type { Logger } from './logger.ts'
import { RefusalLog } from './refusal-log.ts'
import type { Decoded } from './wire.ts'

/** Senders whose latest sequence number and budget are remembered, per topic (oldest forgotten first). */
export const maxSendersTracked = 10_000
/** Refusals of one signer on one topic are logged at most once per interval. */
export const gossipRefusalLogIntervalMs = 1_000
/** Messages of a signer not (yet) known as a node are logged at most once per interval, at info: that is not always an attack (a node's admission may not have arrived here yet). */
export const unadmittedLogIntervalMs = 10_000

/** What a topic carries: the wire form of its message, decode checking size and schema. */
export interface SignedTopicCodec<T extends { nodeId: string }> {
  topic: string
  encode(value: T): Uint8Array
  decode(bytes: Uint8Array): Decoded<T>
}

/** How many valid messages one signer may have delivered: `burst` at once, then `perSecond`. */
export interface GossipBudget {
  burst: number
  perSecond: number
}

/**
 * Refused messages a peer may send of its own before it is graylisted: far more than any honest
 * node's version skew makes (it publishes a few a second), and more than the fuzz test's few hundred
 * per topic, which must each reach the validator to be counted.
 */
export const refusalBudget: GossipBudget = { burst: 500, perSecond: 10 }

export interface SignedTopicCounters {
  published: number
  delivered: number
  /** Rejected: unsigned, undecodable (size, CBOR, schema) or naming another node than its signer. */
  refused: number
  stale: number
  /** Ignored: the signer is not a node of the mesh (as far as this node's document knows). */
  unadmitted: number
  /** Ignored: valid, but past the signer's budget. */
  overBudget: number
  /** Peers graylisted for flooding this topic with messages of their own. */
  penalized: number
}

export interface SignedTopicComponents<T> {
  pubsub: GossipSub
  logger: Logger
  onMessage(value: T): void
  /** Admission: is this signer a node of the mesh? (absent: everyone is). Messages of others are ignored, undecoded. */
  accept?(signer: string): boolean
  /** For the budget (default: performance.now). */
  nowMs?(): number
}

interface Bucket { tokens: number; atMs: number }

export class SignedTopicChannel<T extends { nodeId: string }> {
  readonly counters: SignedTopicCounters = { published: 0, delivered: 0, refused: 0, stale: 0, unadmitted: 0, overBudget: 0, penalized: 0 }
  readonly #codec: SignedTopicCodec<T>
  readonly #components: SignedTopicComponents<T>
  readonly #budget: GossipBudget
  readonly #nowMs: () => number
  readonly #refusalLog: RefusalLog
  readonly #unadmittedLog: RefusalLog
  readonly #latest = new Map<string, bigint>()
  readonly #buckets = new Map<string, Bucket>()
  readonly #refusalBuckets = new Map<string, Bucket>()
  #started = false
  readonly #onMessage = (event: CustomEvent<Message>): void => {
    const message = event.detail
    if (message.topic !== this.#codec.topic) return
    const decoded = this.#codec.decode(message.data)
    if (!decoded.ok) return // the validator already refused it; a late one changes nothing
    this.counters.delivered++
    this.#components.onMessage(decoded.value)
  }

  constructor(codec: SignedTopicCodec<T>, components: SignedTopicComponents<T>, budget: GossipBudget) {
    if (!(budget.burst >= 1 && budget.perSecond > 0)) throw new Error('assertion: a gossip budget allows at least one message')
    this.#codec = codec
    this.#components = components
    this.#budget = budget
    this.#nowMs = components.nowMs ?? (() => performance.now())
    this.#refusalLog = new RefusalLog(components.logger, this.#nowMs, { intervalMs: gossipRefusalLogIntervalMs, maxKeys: maxSendersTracked })
    this.#unadmittedLog = new RefusalLog(components.logger, this.#nowMs, { intervalMs: unadmittedLogIntervalMs, maxKeys: maxSendersTracked })
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

  #validate(propagationSource: PeerId, message: Message): TopicValidatorResult {
    const source = propagationSource.toString()
    if (message.type !== 'signed') return this.#reject('unsigned message', source, null, false)
    const signer = message.from.toString()
    // Its own message: a flood of these is the sender's doing, and costs it a penalty.
    const own = source === signer
    // Ignored, not rejected: a node that forwards it may know of an admission this one has not seen yet.
    if (this.#components.accept?.(signer) === false) {
      this.counters.unadmitted++
      this.#unadmittedLog.log(signer, 'info', 'gossip-refused', { topic: this.topic, signer, reason: 'the signer is not a node of this mesh', verdict: 'ignore' })
      if (own && !this.#spend(this.#buckets, signer, this.#budget)) this.#penalize(signer, 'unadmitted messages past its budget')
      return TopicValidatorResult.Ignore
    }
    const decoded = this.#codec.decode(message.data)
    if (!decoded.ok) return this.#reject(decoded.reason, signer, signer, own)
    if (decoded.value.nodeId !== signer) return this.#reject(`names node ${decoded.value.nodeId.slice(0, 128)} but is signed by ${signer}`, signer, signer, own)
    const latest = this.#latest.get(signer)
    if (latest !== undefined && message.sequenceNumber <= latest) {
      this.counters.stale++
      if (own && !this.#spend(this.#buckets, signer, this.#budget)) this.#penalize(signer, 'stale messages past its budget')
      return TopicValidatorResult.Ignore
    }
    if (!this.#spend(this.#buckets, signer, this.#budget)) {
      this.counters.overBudget++
      this.#refusalLog.log(signer, 'warn', 'gossip-refused', { topic: this.topic, signer, reason: `over its budget (${this.#budget.burst} at once, then ${this.#budget.perSecond} a second)`, verdict: 'ignore' })
      if (own) this.#penalize(signer, 'valid messages past its budget')
      return TopicValidatorResult.Ignore
    }
    this.#latest.delete(signer) // re-insert: the map's order is least recently heard first
    this.#latest.set(signer, message.sequenceNumber)
    if (this.#latest.size > maxSendersTracked) this.#latest.delete(this.#latest.keys().next().value!)
    return TopicValidatorResult.Accept
  }

  /** Takes one token of the signer's bucket (refilled at perSecond up to burst); false when it has none. */
  #spend(buckets: Map<string, Bucket>, signer: string, budget: GossipBudget): boolean {
    const nowMs = this.#nowMs()
    const bucket = buckets.get(signer) ?? { tokens: budget.burst, atMs: nowMs }
    bucket.tokens = Math.min(budget.burst, bucket.tokens + ((nowMs - bucket.atMs) / 1_000) * budget.perSecond)
    bucket.atMs = nowMs
    buckets.delete(signer)
    buckets.set(signer, bucket)
    if (buckets.size > maxSendersTracked) buckets.delete(buckets.keys().next().value!)
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }

  /** Graylists a peer flooding messages of its own (gossip-penalties.ts); once per penalty. */
  #penalize(peerId: string, reason: string): void {
    const penalties = gossipPenaltiesOf(this.#components.pubsub)
    if (penalties === undefined || penalties.isPenalized(peerId)) return
    penalties.penalize(peerId)
    this.counters.penalized++
    this.#components.logger.warn('gossip-peer-penalized', { topic: this.topic, peerId, reason })
  }

  #reject(reason: string, logKey: string, signer: string | null, own: boolean): TopicValidatorResult {
    this.counters.refused++
    this.#refusalLog.log(logKey, 'warn', 'gossip-refused', { topic: this.topic, signer, reason, verdict: 'reject' })
    if (own && signer !== null && !this.#spend(this.#refusalBuckets, signer, refusalBudget)) this.#penalize(signer, 'refused messages past its allowance')
    return TopicValidatorResult.Reject
  }
}
