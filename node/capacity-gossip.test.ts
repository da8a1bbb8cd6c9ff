// Proves the capacity topic's validator: only signed gossip that parses, names its own signer and
// is newer than the signer's last accepted message is accepted; everything else is refused or
// ignored (never delivered, never forwarded), with a counter.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { TopicValidatorResult, type GossipSub, type Message, type TopicValidatorFn } from '@libp2p/gossipsub'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { asNodeId } from '../consensus/index.ts'
import { CapacityGossipChannel, capacityTopic } from './capacity-gossip.ts'
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
