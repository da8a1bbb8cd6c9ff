// Proves the capacity topic's validator: only signed gossip that parses, names its own signer and
// is newer than the signer's last accepted message is accepted; everything else is refused or
// ignored (never delivered, never forwarded), with a counter. Admission is checked before the payload
// is decoded; a signer's valid messages past its budget are ignored, and a peer flooding messages of
// its own is graylisted (gossip-penalties.ts) while a relay of them never is.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { TopicValidatorResult, type GossipSub, type Message, type TopicValidatorFn } from '@libp2p/gossipsub'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { asNodeId } from '../consensus/index.ts'
import { CapacityGossipChannel, capacityGossipBudget, capacityTopic } from './capacity-gossip.ts'
import { GossipPenalties, gossipPenaltyMs } from './gossip-penalties.ts'
import { silentLogger } from './logger.ts'
import { encodeCapacityGossip } from './wire.ts'

/** Just enough of gossipsub for the channel to register its validator. */
function fakePubsub(): GossipSub & { validator(): TopicValidatorFn } {
  const topicValidators = new Map<string, TopicValidatorFn>()
  const fake = {
    topicValidators,
    addEventListener() {},
    removeEventListener() {},
    subscribe() {},
    unsubscribe() {},
    publish: async () => ({ recipients: [] }),
    validator: () => topicValidators.get(capacityTopic)!,
  }
  return fake as unknown as GossipSub & { validator(): TopicValidatorFn }
}

describe('capacity gossip validation', () => {
  it('accepts fresh signed gossip from its own node and refuses the rest', async () => {
    const pubsub = fakePubsub()
    const channel = new CapacityGossipChannel({ pubsub, logger: silentLogger, onGossip: () => {} })
    channel.start()
    const key = await generateKeyPair('Ed25519')
    const signer = peerIdFromPrivateKey(key)
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const gossip = { nodeId: asNodeId(signer.toString()), seq: 1, free: { cpuMillis: 1_000, memoryMiB: 512, diskMiB: 0, gpuCount: 0 }, running: 0 }
    const signed = (data: Uint8Array, sequenceNumber: bigint): Message => ({ type: 'signed', from: signer, topic: capacityTopic, data, sequenceNumber, signature: new Uint8Array(64), key: key.publicKey })
    const validate = (message: Message): unknown => pubsub.validator()(signer, message)

    expect(validate(signed(encodeCapacityGossip(gossip), 10n))).toBe(TopicValidatorResult.Accept)
    expect(validate(signed(encodeCapacityGossip(gossip), 10n))).toBe(TopicValidatorResult.Ignore) // replay
    expect(validate(signed(encodeCapacityGossip(gossip), 9n))).toBe(TopicValidatorResult.Ignore) // stale
    expect(validate(signed(encodeCapacityGossip(gossip), 11n))).toBe(TopicValidatorResult.Accept)
    expect(validate(signed(encodeCapacityGossip({ ...gossip, nodeId: asNodeId(other.toString()) }), 12n))).toBe(TopicValidatorResult.Reject)
    expect(validate(signed(new TextEncoder().encode('{"nodeId":1}'), 13n))).toBe(TopicValidatorResult.Reject)
    expect(validate({ type: 'unsigned', topic: capacityTopic, data: encodeCapacityGossip(gossip) })).toBe(TopicValidatorResult.Reject)
    expect(channel.counters).toMatchObject({ refused: 3, stale: 2 })
    channel.stop()
    expect(pubsub.topicValidators.has(capacityTopic)).toBe(false)
  })
})

describe('capacity gossip budgets', () => {
  const setUp = async (accept: (signer: string) => boolean = () => true) => {
    const pubsub = fakePubsub()
    const clock = { nowMs: 0 }
    const penalties = new GossipPenalties(() => clock.nowMs)
    penalties.attach(pubsub)
    let delivered = 0
    const channel = new CapacityGossipChannel({ pubsub, logger: silentLogger, accept, nowMs: () => clock.nowMs, onGossip: () => { delivered++ } })
    channel.start()
    const key = await generateKeyPair('Ed25519')
    const signer = peerIdFromPrivateKey(key)
    const relay = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const gossip = { nodeId: asNodeId(signer.toString()), seq: 1, free: { cpuMillis: 1_000, memoryMiB: 512, diskMiB: 0, gpuCount: 0 }, running: 0 }
    const message = (sequenceNumber: bigint, data = encodeCapacityGossip(gossip)): Message => ({ type: 'signed', from: signer, topic: capacityTopic, data, sequenceNumber, signature: new Uint8Array(64), key: key.publicKey })
    return { pubsub, clock, penalties, channel, signer, relay, message, delivered: () => delivered }
  }

  it('accepts a burst of a signer\'s valid messages, ignores the rest, and takes more as its budget refills', async () => {
    const { pubsub, clock, channel, relay, message } = await setUp()
    const { burst, perSecond } = capacityGossipBudget
    // Relayed: the relay is never penalized, the signer's budget still holds.
    const verdicts = Array.from({ length: burst + 5 }, (_, index) => pubsub.validator()(relay, message(BigInt(index + 1))))
    expect(verdicts.filter((verdict) => verdict === TopicValidatorResult.Accept)).toHaveLength(burst)
    expect(verdicts.slice(burst)).toEqual(Array(5).fill(TopicValidatorResult.Ignore))
    expect(channel.counters).toMatchObject({ overBudget: 5, penalized: 0 })
    clock.nowMs += 1_000
    const refilled = Array.from({ length: perSecond + 1 }, (_, index) => pubsub.validator()(relay, message(BigInt(100 + index))))
    expect(refilled.filter((verdict) => verdict === TopicValidatorResult.Accept)).toHaveLength(perSecond)
  })

  it('graylists a peer flooding valid messages of its own past its budget, for gossipPenaltyMs', async () => {
    const { pubsub, clock, penalties, channel, signer, message } = await setUp()
    for (let index = 0; index <= capacityGossipBudget.burst; index++) pubsub.validator()(signer, message(BigInt(index + 1)))
    expect(channel.counters).toMatchObject({ overBudget: 1, penalized: 1 })
    expect(penalties.appSpecificScore(signer.toString())).toBeLessThan(0)
    clock.nowMs += gossipPenaltyMs
    expect(penalties.appSpecificScore(signer.toString())).toBe(0)
  })

  it('checks admission before decoding: a stranger\'s garbage is ignored undecoded, and a stranger flooding it is graylisted', async () => {
    const { pubsub, channel, penalties, signer, message } = await setUp(() => false)
    const garbage = new TextEncoder().encode('not cbor at all')
    for (let index = 0; index <= capacityGossipBudget.burst; index++) expect(pubsub.validator()(signer, message(BigInt(index + 1), garbage))).toBe(TopicValidatorResult.Ignore)
    expect(channel.counters).toMatchObject({ unadmitted: capacityGossipBudget.burst + 1, refused: 0, penalized: 1 })
    expect(penalties.isPenalized(signer.toString())).toBe(true)
  })
})
