// The daemon's check of a client request after it parsed: its signature (by the client's key), the
// mesh it was signed for, its freshness (signed inside the replay window, not seen before) and the
// client's role against the role table. The protocol layer (client-protocol.ts) calls it once per request and answers a
// refusal with its code; nothing else runs for a refused request.
import type { AdmissionRole } from '../consensus/index.ts'
import { authorize } from './client-authorization.ts'
import type { ClientRequest } from './client-wire.ts'
import { ReplayGuard, verifyClientRequestSignature, type RequestSignatureLimits } from './request-signature.ts'

export type GuardVerdict = { ok: true } | { ok: false; code: 'unauthorized' | 'busy'; reason: string } | { ok: false; code: 'wrong-mesh'; reason: string; mesh: string }

export interface ClientGuardComponents {
  /** This daemon's mesh id (the genesis SHA-256, hex): requests signed for another are refused. */
  meshId: string
  nowMs(): number
  /** The role `peerId` acts with in the current document (undefined: not admitted). */
  roleOf(peerId: string): AdmissionRole | undefined
}

export class ClientGuard {
  readonly counters = { accepted: 0, badSignature: 0, wrongMesh: 0, replayed: 0, forbidden: 0 }
  readonly #components: ClientGuardComponents
  readonly #replay: ReplayGuard

  constructor(components: ClientGuardComponents, limits: Partial<RequestSignatureLimits> = {}) {
    this.#components = components
    this.#replay = new ReplayGuard(limits)
  }

  /** The role `peerId` acts with now (undefined: none): the protocol reserves room by it before a request is read. */
  roleOf(peerId: string): AdmissionRole | undefined {
    return this.#components.roleOf(peerId)
  }

  /** `received` is the request as it arrived (parsed JSON), which is what the signature covers. */
  async check(request: ClientRequest, received: Record<string, unknown>): Promise<GuardVerdict> {
    const signed = await verifyClientRequestSignature(received, request.client)
    if (!signed.ok) {
      this.counters.badSignature++
      return { ok: false, code: 'unauthorized', reason: signed.reason }
    }
    if (request.mesh !== this.#components.meshId) {
      this.counters.wrongMesh++
      return { ok: false, code: 'wrong-mesh', mesh: this.#components.meshId, reason: `the request was signed for mesh ${request.mesh.slice(0, 16)}..., this daemon belongs to mesh ${this.#components.meshId.slice(0, 16)}...` }
    }
    const fresh = this.#replay.check(request.signature, request.signedAtMs, this.#components.nowMs())
    if (!fresh.ok) {
      this.counters.replayed++
      return fresh
    }
    const allowed = authorize(request, this.#components.roleOf(request.client))
    if (!allowed.ok) {
      this.counters.forbidden++
      return { ok: false, code: 'unauthorized', reason: allowed.reason }
    }
    this.counters.accepted++
    return { ok: true }
  }
}
