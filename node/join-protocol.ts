// The daemon's side of /fabric/join/1.0.0: a peer presents an invite token; the token is checked
// (invite-token.ts: format, the document's admin key, mesh id, expiry, peer binding) and for single
// use against the document; then the core's 'admit' input records the grant (the invite token
// itself, which every peer verifies) with its nonce, and the peer is answered once that is durable
// on a majority of voters, with the genesis document a joining node boots from.
//
// Single use: the nonce sits in the document's `invites` map (consensus/admission-grants.ts),
// written by whichever node took the invite; any node then refuses the invite again, except to a
// peer that already holds its role (a joiner retrying after a lost answer). Two
// nodes taking the same unbound invite at the same moment, before either's write reached the
// other, can both admit; an invite bound to a peer (`fabric invite --peer`) cannot be misused so.
//
// Bounded so that strangers cannot keep an invited peer out: a peer holds one join stream at a time
// (a newer one replaces one whose request has not arrived; while its join is answered, the next is
// told `busy`); the request must arrive within requestReadTimeoutMs, its length prefix no longer
// than maxRequestBytes needs (codec/frames.ts); the invite is verified before any scarce room is
// taken, and only admissions of verified invites count against maxConcurrentAdmissions. The gate is
// told of a verified invite (`joinInvited`), so it neither displaces nor cools that peer.
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { AdmissionRole, Document } from '../consensus/index.ts'
import { encodeFrame, FrameReader, sendAll } from '../codec/index.ts'
import { adminOf, effectiveRole, inviteUsed } from './admission-records.ts'
import type { AdmitOutcome } from './admission-requests.ts'
import { verifyInvite, type Invite } from './invite-token.ts'
import { decodeJoinRequest, encodeJoinAnswer, joinProtocol, joinRefusal, joinWireLimits, type JoinAnswer } from './join-wire.ts'
import type { Logger } from './logger.ts'
import { RefusalLog } from './refusal-log.ts'

export interface JoinProtocolLimits {
  /** Admissions of verified invites being made durable at once; past it a verified joiner is told `busy` (and not cooled). */
  maxConcurrentAdmissions: number
  /** Join streams one connection may hold open (libp2p resets the next): room for a retry to replace a stalled one. */
  maxInboundStreamsPerConnection: number
  /** Join streams this node may open on one connection (a daemon never joins through another; a CLI's host registers no handler). */
  maxOutboundStreamsPerConnection: number
  /** A joiner must send its token this soon after opening the stream, or the stream is closed. */
  requestReadTimeoutMs: number
  /** The admission must be durable this soon, else the joiner is told to try again (below the gate's join window). */
  answerTimeoutMs: number
  writeTimeoutMs: number
}

export const defaultJoinProtocolLimits: JoinProtocolLimits = {
  maxConcurrentAdmissions: 8,
  maxInboundStreamsPerConnection: 2,
  maxOutboundStreamsPerConnection: 2,
  // A joiner sends its token (a few hundred bytes) as soon as the stream opens: 3 s is many round trips.
  requestReadTimeoutMs: 3_000,
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
  /** Steps the core's 'admit' input with the grant (the invite token); resolves once durable on a majority of voters, or refused. */
  admit(peerId: string, grant: string): Promise<AdmitOutcome>
  /** Told while a join request is answered (not while one is awaited), so the gate keeps the joiner's connection meanwhile. */
  joinStarted?(peerId: string): void
  joinEnded?(peerId: string): void
  /** Told once the peer presented an invite that verified: the gate neither displaces nor cools it. */
  joinInvited?(peerId: string): void
}

export interface JoinProtocolCounters {
  admitted: number
  refused: Record<string, number>
  /** Streams closed unanswered: a newer stream of the same peer replaced them before their request arrived. */
  replaced: number
}

interface ActiveJoin { stream: Stream; answering: boolean }

export class JoinProtocol {
  readonly counters: JoinProtocolCounters = { admitted: 0, refused: {}, replaced: 0 }
  readonly #components: JoinProtocolComponents
  readonly #limits: JoinProtocolLimits
  /** The one join stream each peer holds. */
  readonly #active = new Map<string, ActiveJoin>()
  #admitting = 0
  /** Nonces being admitted right now on this node (a second presentation waits for the document). */
  readonly #inFlight = new Set<string>()
  /** Refusals are all counted, but logged once per peer a second (refusal-log.ts). */
  readonly #refusalLog: RefusalLog
  #started = false

  constructor(components: JoinProtocolComponents, limits: Partial<JoinProtocolLimits> = {}) {
    this.#components = components
    this.#limits = { ...defaultJoinProtocolLimits, ...limits }
    this.#refusalLog = new RefusalLog(components.logger)
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#components.libp2p.handle(joinProtocol, (stream, connection) => void this.#serve(stream, connection), { maxInboundStreams: this.#limits.maxInboundStreamsPerConnection, maxOutboundStreams: this.#limits.maxOutboundStreamsPerConnection })
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#components.libp2p.unhandle(joinProtocol).catch(() => {})
    for (const { stream } of this.#active.values()) stream.abort(new Error('the daemon is stopping'))
    this.#active.clear()
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const peerId = connection.remotePeer.toString()
    const answer = async (reply: JoinAnswer): Promise<void> => {
      if (!reply.ok) {
        this.counters.refused[reply.code] = (this.counters.refused[reply.code] ?? 0) + 1
        this.#refusalLog.log(peerId, 'info', 'join-refused', { peerId, code: reply.code, message: reply.message })
      }
      await sendAll(stream, encodeFrame(encodeJoinAnswer(reply)), this.#limits.writeTimeoutMs).catch(() => {})
      await stream.close().catch(() => stream.abort(new Error('closing')))
    }
    if (!this.#started) return stream.abort(new Error('not serving'))
    const previous = this.#active.get(peerId)
    if (previous?.answering === true) return answer(joinRefusal('busy', `a join of peer ${peerId} is being answered on another stream; wait for its answer`))
    if (previous !== undefined) {
      // Its request never came: the peer moved on to this stream.
      this.counters.replaced++
      previous.stream.abort(new Error('replaced by a newer join stream of the same peer'))
    }
    const active: ActiveJoin = { stream, answering: false }
    this.#active.set(peerId, active)
    try {
      const reader = new FrameReader(stream, { maxFrameBytes: joinWireLimits.maxRequestBytes, maxBufferedBytes: joinWireLimits.maxRequestBytes + 64 })
      let bytes: Uint8Array
      try {
        bytes = await reader.read({ signal: AbortSignal.timeout(this.#limits.requestReadTimeoutMs) })
      } catch (error) {
        if (this.#active.get(peerId) !== active) return // replaced: nothing to answer
        return await answer(joinRefusal('bad-request', `no readable join request within ${this.#limits.requestReadTimeoutMs} ms (${(error as Error).message.slice(0, 120)})`))
      }
      // Only a request keeps the joiner's connection past its window: a silent stream does not.
      active.answering = true
      this.#components.joinStarted?.(peerId)
      const decoded = decodeJoinRequest(bytes)
      if (!decoded.ok) return await answer(joinRefusal('bad-request', decoded.reason))
      const token = decoded.value.token
      await answer(token === undefined ? await this.#openGenesis(peerId) : await this.#join(peerId, token))
    } finally {
      if (active.answering) this.#components.joinEnded?.(peerId)
      if (this.#active.get(peerId) === active) this.#active.delete(peerId)
    }
  }

  /** A request without a token: an open mesh hands out its genesis (anyone may take part); a closed one needs an invite. */
  async #openGenesis(peerId: string): Promise<JoinAnswer> {
    if (adminOf(this.#components.document()) !== null) return joinRefusal('invite-needed', `this mesh admits peers by invite only: ask its admin for one (\`fabric invite --peer ${peerId}\`) and start with --invite TOKEN`)
    const genesis = await this.#components.genesis()
    if (genesis === undefined) return joinRefusal('unavailable', `node ${this.#components.nodeId} has no copy of the genesis document; ask another node`)
    return { ok: true, role: 'node', meshId: this.#components.meshId, admin: '', genesis, node: this.#components.nodeId }
  }

  async #join(peerId: string, token: string): Promise<JoinAnswer> {
    const document = this.#components.document()
    const adminId = adminOf(document)
    if (adminId === null) return joinRefusal('open-mesh', 'this mesh has no admin key: every peer may take part without an invite (start nodes with --voters, use clients as they are)')
    // Verified before anything scarce is taken: a flood of bad invites costs a signature check each.
    const verified = await verifyInvite(token, { adminId, meshId: this.#components.meshId, peerId, nowMs: this.#components.nowMs() })
    if (!verified.ok) return joinRefusal(verified.code, verified.reason)
    const invite = verified.invite
    this.#components.joinInvited?.(peerId)
    const current = effectiveRole(document, peerId)
    if (current === 'revoked') return joinRefusal('wrong-peer', `peer ${peerId} was revoked; only the admin can admit it again (\`fabric admit\`)`)
    if (inviteUsed(document, invite.nonce) || this.#inFlight.has(invite.nonce)) {
      // A joiner that lost the answer asks again: it holds the role already, so say yes again.
      if (current === invite.role && !this.#inFlight.has(invite.nonce)) return this.#welcome(invite)
      return joinRefusal('used', this.#inFlight.has(invite.nonce) ? 'this invite is being used by another peer right now' : 'this invite was used already (each invite admits one peer)')
    }
    if (this.#admitting >= this.#limits.maxConcurrentAdmissions) return joinRefusal('busy', `this node is admitting ${this.#limits.maxConcurrentAdmissions} peers already; try again`)
    this.#inFlight.add(invite.nonce)
    this.#admitting++
    try {
      const outcome = await this.#admitDurably(peerId, token)
      if (!outcome.ok) return joinRefusal('unavailable', outcome.reason)
    } finally {
      this.#admitting--
      this.#inFlight.delete(invite.nonce)
    }
    this.counters.admitted++
    this.#components.logger.info('peer-admitted', { peerId, role: invite.role, invite: invite.nonce })
    return this.#welcome(invite)
  }

  /** The core records the grant (the invite itself, signed by the admin key) and the invite's use, in one change. */
  async #admitDurably(peerId: string, token: string): Promise<AdmitOutcome> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<AdmitOutcome>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, code: 'not-acknowledged', reason: `the admission was not durable on a majority of voters within ${this.#limits.answerTimeoutMs} ms; try again (it may still complete)` }), this.#limits.answerTimeoutMs)
    })
    try {
      return await Promise.race([this.#components.admit(peerId, token), timeout])
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
