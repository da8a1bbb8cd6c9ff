// Proves the gater's decisions at connection time, on a controlled clock: peers with a role are let
// in, revoked peers are refused in and out; peers without a role are let in as pending joiners up to
// the named limit (a newcomer displaces the oldest one without a valid invite), and a pending
// joiner's reconnection is refused once its window is over (unless a join is being answered); an
// invited joiner is never cooled; a peer holds at most maxConnectionsPerPeer inbound connections. The sweep cuts a joiner whose window ended unused, also over a connection
// this node dialed; admission-mesh.test.ts does the rest on real daemons.
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import type { AdmissionRole } from '../consensus/index.ts'
import { AdmissionGate } from './admission-gate.ts'
import { silentLogger } from './logger.ts'

let peers: PeerId[] = []

beforeAll(async () => {
  peers = await Promise.all(Array.from({ length: 5 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
})

function gateWith(roles: Map<string, AdmissionRole>) {
  const clock = { nowMs: 0 }
  const gate = new AdmissionGate({ nowMs: () => clock.nowMs, roleOf: (peerId) => roles.get(peerId), logger: silentLogger }, { maxPendingJoiners: 2, pendingJoinWindowMs: 1_000 })
  const letIn = (peer: PeerId): boolean => gate.gater.denyInboundEncryptedConnection!(peer, undefined as never) === false
  return { gate, clock, letIn }
}

describe('the admission gate', () => {
  it('lets admitted peers in and refuses revoked ones in every direction', () => {
    const [node, viewer, revoked] = peers as [PeerId, PeerId, PeerId]
    const { gate, letIn } = gateWith(new Map([[node.toString(), 'node'], [viewer.toString(), 'viewer'], [revoked.toString(), 'revoked']]))
    expect(letIn(node)).toBe(true)
    expect(letIn(viewer)).toBe(true)
    expect(letIn(revoked)).toBe(false)
    expect(gate.gater.denyOutboundEncryptedConnection!(revoked, undefined as never)).toBe(true)
    expect(gate.gater.denyDialPeer!(revoked)).toBe(true)
    expect(gate.gater.denyDialPeer!(node)).toBe(false)
    expect(gate.pendingJoiners).toBe(0)
    expect(gate.counters.refused).toEqual({ revoked: 1, 'revoked (outbound)': 1, 'revoked (dial)': 1 })
  })

  it('holds at most maxPendingJoiners peers without a role, each for its window', () => {
    const [first, second] = peers as [PeerId, PeerId]
    const { gate, clock, letIn } = gateWith(new Map())
    expect(letIn(first)).toBe(true)
    expect(letIn(second)).toBe(true)
    expect(gate.pendingJoiners).toBe(2)
    // A second connection of a pending joiner inside its window is fine; after it, refused.
    clock.nowMs = 999
    expect(letIn(first)).toBe(true)
    clock.nowMs = 1_000
    expect(letIn(first)).toBe(false)
    expect(gate.counters.refused['join window over']).toBe(1)
  })

  it('makes room for a newcomer by displacing the oldest pending joiner without a valid invite, never an invited one', () => {
    const [first, second, third, fourth, fifth] = peers as [PeerId, PeerId, PeerId, PeerId, PeerId]
    const { gate, letIn } = gateWith(new Map())
    expect(letIn(first)).toBe(true)
    expect(letIn(second)).toBe(true)
    gate.joinInvited(first.toString())
    // Full: the third displaces the second (the first presented a valid invite).
    expect(letIn(third)).toBe(true)
    expect(gate.counters.pendingDisplaced).toBe(1)
    expect(gate.pendingJoiners).toBe(2)
    gate.joinInvited(third.toString())
    // Every pending joiner is invited: no room, the newcomer is refused.
    expect(letIn(fourth)).toBe(false)
    expect(gate.counters.refused).toEqual({ '2 pending joiners already': 1 })
    expect(letIn(fifth)).toBe(false)
  })

  it('ends an invited joiner\'s window without a cooldown, and cools a stranger\'s', () => {
    const [invited, stranger] = peers as [PeerId, PeerId]
    const clock = { nowMs: 0 }
    const gate = new AdmissionGate({ nowMs: () => clock.nowMs, roleOf: () => undefined, logger: silentLogger }, { pendingJoinWindowMs: 1_000, refusedCooldownMs: 5_000 })
    const connections = [invited, stranger].map((peer) => ({ remotePeer: peer, direction: 'inbound', abort: () => {} }))
    gate.start({ getConnections: () => connections } as never)
    try {
      expect(gate.gater.denyInboundEncryptedConnection!(invited, undefined as never)).toBe(false)
      expect(gate.gater.denyInboundEncryptedConnection!(stranger, undefined as never)).toBe(false)
      gate.joinInvited(invited.toString())
      clock.nowMs = 1_000
      gate.sweep()
      connections.length = 0
      expect(gate.counters.pendingExpired).toBe(2)
      // The invited peer (told busy, say) may come straight back; the stranger is refused while it cools.
      expect(gate.gater.denyInboundEncryptedConnection!(invited, undefined as never)).toBe(false)
      expect(gate.gater.denyInboundEncryptedConnection!(stranger, undefined as never)).toBe(true)
    } finally {
      gate.stop()
    }
  })

  it('lets a peer hold at most maxConnectionsPerPeer inbound connections', () => {
    const [node] = peers as [PeerId]
    const gate = new AdmissionGate({ nowMs: () => 0, roleOf: () => 'node', logger: silentLogger }, { maxConnectionsPerPeer: 2 })
    const connections: { remotePeer: PeerId; direction: string }[] = []
    gate.start({ getConnections: () => connections } as never)
    try {
      for (let index = 0; index < 2; index++) {
        expect(gate.gater.denyInboundEncryptedConnection!(node, undefined as never)).toBe(false)
        connections.push({ remotePeer: node, direction: 'inbound' })
      }
      expect(gate.gater.denyInboundEncryptedConnection!(node, undefined as never)).toBe(true)
      expect(gate.counters.refused).toEqual({ '2 connections of this peer already': 1 })
    } finally {
      gate.stop()
    }
  })

  it('keeps a joiner whose join is being answered past its window', () => {
    const [joiner] = peers as [PeerId]
    const { gate, clock, letIn } = gateWith(new Map())
    expect(letIn(joiner)).toBe(true)
    gate.joinStarted(joiner.toString())
    clock.nowMs = 5_000
    expect(letIn(joiner)).toBe(true)
    gate.joinEnded(joiner.toString())
    expect(letIn(joiner)).toBe(false)
  })
})

describe('the admission gate\'s sweep', () => {
  const connection = (peer: PeerId, direction: 'inbound' | 'outbound') => {
    const state = { aborted: false }
    return { state, value: { remotePeer: peer, direction, abort: () => { state.aborted = true } } }
  }

  it('cuts a joiner whose window ended unused, also over a connection this node dialed, and refuses it while it cools down', () => {
    const [stranger] = peers as [PeerId]
    const clock = { nowMs: 0 }
    const gate = new AdmissionGate({ nowMs: () => clock.nowMs, roleOf: () => undefined, logger: silentLogger }, { pendingJoinWindowMs: 1_000, refusedCooldownMs: 5_000 })
    const connections: ReturnType<typeof connection>[] = []
    gate.start({ getConnections: () => connections.map((entry) => entry.value) } as never)
    try {
      expect(gate.gater.denyInboundEncryptedConnection!(stranger, undefined as never)).toBe(false)
      const inbound = connection(stranger, 'inbound')
      connections.push(inbound)
      gate.sweep()
      expect(inbound.state.aborted).toBe(false)
      clock.nowMs = 1_000
      gate.sweep()
      expect(inbound.state.aborted).toBe(true)
      // This node dials it back (the DHT refreshing its table): that connection is cut too, and its
      // own redial is refused while it cools down.
      connections.length = 0
      const outbound = connection(stranger, 'outbound')
      connections.push(outbound)
      gate.sweep()
      expect(outbound.state.aborted).toBe(true)
      expect(gate.gater.denyInboundEncryptedConnection!(stranger, undefined as never)).toBe(true)
      // Cooled down: it is let in again, and this node's connections to it are left alone.
      clock.nowMs = 6_000
      expect(gate.gater.denyInboundEncryptedConnection!(stranger, undefined as never)).toBe(false)
      const later = connection(stranger, 'outbound')
      connections.push(later)
      gate.sweep()
      expect(later.state.aborted).toBe(false)
    } finally {
      gate.stop()
    }
  })
})
