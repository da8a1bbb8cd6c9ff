// The daemon's side of /fabric/join/1.0.0: a peer presents an invite token; the token is checked
// (invite-token.ts: format, the document's admin key, mesh id, expiry, peer binding) and for single
// use against the document; then the core's 'admit' input records, in order, a marker for the
// invite's nonce and the peer's role, and the peer is answered once both are durable on a majority
// of voters, with the genesis document a joining node boots from.
//
// Single use: the marker `invite:<nonce>` sits in the document's admission map (as 'revoked', so it
// grants nothing), written by whichever node took the invite; any node then refuses the invite
// again, except to a peer that already holds its role (a joiner retrying after a lost answer). Two
// nodes taking the same unbound invite at the same moment, before either's write reached the
// other, can both admit; an invite bound to a peer (`fabric invite --peer`) cannot be misused so.
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { AdmissionRole, Document } from '../consensus/index.ts'
import { adminOf, effectiveRole, inviteMarkerKey, inviteUsed } from './admission-records.ts'
import type { AdmitOutcome } from './admission-requests.ts'
import { verifyInvite, type Invite } from './invite-token.ts'
import { decodeJoinRequest, encodeJoinAnswer, joinProtocol, joinRefusal, joinWireLimits, type JoinAnswer } from './join-wire.ts'
import type { Logger } from './logger.ts'

export interface JoinProtocolLimits {
  maxConcurrentJoins: number
  /** Join streams one connection may hold open (a joiner asks once, and maybe once more). */
  maxInboundStreamsPerConnection: number
  /** A joiner must send its token this soon after opening the stream. */
  requestReadTimeoutMs: number
  /** The admission must be durable this soon, else the joiner is told to try again (below the gate's join window). */
  answerTimeoutMs: number
  writeTimeoutMs: number
}

export const defaultJoinProtocolLimits: JoinProtocolLimits = {
  maxConcurrentJoins: 8,
  maxInboundStreamsPerConnection: 2,
  requestReadTimeoutMs: 5_000,
  answerTimeoutMs: 8_000,
  writeTimeoutMs: 5_000,
}

export interface JoinProtocolComponents {
  libp2p: Libp2p
  logger: Logger
  nodeId: string
  meshId: string
  nowMs(): number
  document(): Document
  genesis(): Promise<Uint8Array | undefined>
  /** Steps the core's 'admit' input; resolves once durable on a majority of voters, or refused. */
  admit(peerId: string, role: AdmissionRole): Promise<AdmitOutcome>
  /** Told while a join is answered, so the gate keeps the joiner's connection meanwhile. */
  joinStarted?(peerId: string): void
  joinEnded?(peerId: string): void
}

export interface JoinProtocolCounters { admitted: number; refused: Record<string, number> }

export class JoinProtocol {
  readonly counters: JoinProtocolCounters = { admitted: 0, refused: {} }
  readonly #components: JoinProtocolComponents
  readonly #limits: JoinProtocolLimits
  readonly #active = new Set<Stream>()
  /** Nonces being admitted right now on this node (a second presentation waits for the document). */
  readonly #inFlight = new Set<string>()
  #started = false

  constructor(components: JoinProtocolComponents, limits: Partial<JoinProtocolLimits> = {}) {
    this.#components = components
    this.#limits = { ...defaultJoinProtocolLimits, ...limits }
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#components.libp2p.handle(joinProtocol, (stream, connection) => void this.#serve(stream, connection), { maxInboundStreams: this.#limits.maxInboundStreamsPerConnection })
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#components.libp2p.unhandle(joinProtocol).catch(() => {})
    for (const stream of this.#active) stream.abort(new Error('the daemon is stopping'))
    this.#active.clear()
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const peerId = connection.remotePeer.toString()
    const framed = lpStream(stream, { maxDataLength: joinWireLimits.maxRequestBytes })
    const answer = async (reply: JoinAnswer): Promise<void> => {
      if (!reply.ok) {
        this.counters.refused[reply.code] = (this.counters.refused[reply.code] ?? 0) + 1
        this.#components.logger.info('join-refused', { peerId, code: reply.code, message: reply.message })
      }
      await framed.write(encodeJoinAnswer(reply), { signal: AbortSignal.timeout(this.#limits.writeTimeoutMs) }).catch(() => {})
      await stream.close().catch(() => stream.abort(new Error('closing')))
    }
    if (!this.#started) return stream.abort(new Error('not serving'))
    if (this.#active.size >= this.#limits.maxConcurrentJoins) return answer(joinRefusal('busy', `this node is answering ${this.#limits.maxConcurrentJoins} joins already; try again`))
    this.#active.add(stream)
    this.#components.joinStarted?.(peerId)
    try {
      let bytes: Uint8Array
      try {
        bytes = (await framed.read({ signal: AbortSignal.timeout(this.#limits.requestReadTimeoutMs) })).subarray()
      } catch (error) {
        return await answer(joinRefusal('bad-request', `no readable join request within ${this.#limits.requestReadTimeoutMs} ms (${(error as Error).message.slice(0, 120)})`))
      }
      const decoded = decodeJoinRequest(bytes)
      if (!decoded.ok) return await answer(joinRefusal('bad-request', decoded.reason))
      await answer(await this.#join(peerId, decoded.value.token))
    } finally {
      this.#components.joinEnded?.(peerId)
      this.#active.delete(stream)
    }
  }

  async #join(peerId: string, token: string): Promise<JoinAnswer> {
    const document = this.#components.document()
    const adminId = adminOf(document)
    if (adminId === null) return joinRefusal('open-mesh', 'this mesh has no admin key: every peer may take part without an invite (start nodes with --voters, use clients as they are)')
    const verified = await verifyInvite(token, { adminId, meshId: this.#components.meshId, peerId, nowMs: this.#components.nowMs() })
    if (!verified.ok) return joinRefusal(verified.code, verified.reason)
    const invite = verified.invite
    const current = effectiveRole(document, peerId)
    if (current === 'revoked') return joinRefusal('wrong-peer', `peer ${peerId} was revoked; only the admin can admit it again (\`fabric admit\`)`)
    if (inviteUsed(document, invite.nonce) || this.#inFlight.has(invite.nonce)) {
      // A joiner that lost the answer asks again: it holds the role already, so say yes again.
      if (current === invite.role && !this.#inFlight.has(invite.nonce)) return this.#welcome(invite)
      return joinRefusal('used', this.#inFlight.has(invite.nonce) ? 'this invite is being used by another peer right now' : 'this invite was used already (each invite admits one peer)')
    }
    this.#inFlight.add(invite.nonce)
    try {
      const outcome = await this.#admitDurably(peerId, invite)
      if (!outcome.ok) return joinRefusal('unavailable', outcome.reason)
    } finally {
      this.#inFlight.delete(invite.nonce)
    }
    this.counters.admitted++
    this.#components.logger.info('peer-admitted', { peerId, role: invite.role, invite: invite.nonce })
    return this.#welcome(invite)
  }

  /** Marker first: a crash between the two writes burns the invite rather than letting it admit twice. */
  async #admitDurably(peerId: string, invite: Invite): Promise<AdmitOutcome> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<AdmitOutcome>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, code: 'not-acknowledged', reason: `the admission was not durable on a majority of voters within ${this.#limits.answerTimeoutMs} ms; try again (it may still complete)` }), this.#limits.answerTimeoutMs)
    })
    const both = Promise.all([this.#components.admit(inviteMarkerKey(invite.nonce), 'revoked'), this.#components.admit(peerId, invite.role)]).then(
      ([marker, peer]): AdmitOutcome => (!marker.ok ? marker : peer),
    )
    try {
      return await Promise.race([both, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  async #welcome(invite: Invite): Promise<JoinAnswer> {
    const genesis = await this.#components.genesis()
    if (genesis === undefined) return joinRefusal('unavailable', `node ${this.#components.nodeId} has no copy of the genesis document (its store predates invites); join through another node`)
    return { ok: true, role: invite.role, meshId: this.#components.meshId, admin: adminOf(this.#components.document()) ?? '', genesis, node: this.#components.nodeId }
  }
}
