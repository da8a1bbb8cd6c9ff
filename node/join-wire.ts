// The wire form of /fabric/join/1.0.0: a peer that has no role yet presents an invite token and is
// answered once its admission is durable (or refused with a code and a reason). A request without a
// token asks an open mesh (no admin key) for its genesis; a closed mesh refuses it (invite-needed). One length-prefixed
// CBOR frame (codec/) each way, zod schemas, named size limits. The answer carries the mesh's genesis
// document, which a joining node boots from (its hash must be the invite's mesh id).
import { z } from 'zod'
import { decodeCbor, encodeCbor } from '../codec/index.ts'
import { invitableRoles, inviteLimits } from './invite-token.ts'
import { byteString, type Decoded } from './wire.ts'

export const joinProtocol = '/fabric/join/1.0.0'
export const joinWireVersion = 1

export const joinWireLimits = {
  maxRequestBytes: inviteLimits.maxTokenChars + 256,
  /** The genesis is some hundreds of bytes (more with nodes listed in it). */
  maxAnswerBytes: 1024 * 1024,
  maxMessageChars: 1_024,
} as const

export const joinRefusalCodes = [
  'bad-request', // the request does not parse
  'malformed', // the token does not parse
  'bad-signature', // not signed by this mesh's admin key
  'wrong-mesh', // the token is for another mesh
  'expired',
  'wrong-peer', // the token is bound to another peer
  'used', // the token was used by another peer already
  'open-mesh', // this mesh has no admin key: nothing to join
  'invite-needed', // no token, and this mesh admits peers by invite only
  'wrong-role', // the joiner's own check: a node invite used by a client, or the reverse
  'busy', // a bound was reached; try again
  'unavailable', // the admission could not be made durable now; try again
] as const
export type JoinRefusalCode = (typeof joinRefusalCodes)[number]

/** No token: a node of an open mesh asking for the genesis it boots from. */
const requestSchema = z.strictObject({ v: z.literal(joinWireVersion), token: z.string().min(1).max(inviteLimits.maxTokenChars).optional() })

const answerSchema = z.discriminatedUnion('ok', [
  z.strictObject({
    ok: z.literal(true),
    role: z.enum(invitableRoles),
    meshId: z.string(),
    /** The admin key's peer id; empty for an open mesh. */
    admin: z.string(),
    /** The genesis document (an Automerge save), as bytes. */
    genesis: byteString,
    /** The node that admitted the joiner. */
    node: z.string(),
  }),
  z.strictObject({ ok: z.literal(false), code: z.enum(joinRefusalCodes), message: z.string().max(joinWireLimits.maxMessageChars) }),
])

export type JoinRequest = z.infer<typeof requestSchema>
export type JoinAnswer = z.infer<typeof answerSchema>

export const encodeJoinRequest = (request: JoinRequest): Uint8Array => encodeCbor(request)
export const encodeJoinAnswer = (answer: JoinAnswer): Uint8Array => encodeCbor(answer)

export function joinRefusal(code: JoinRefusalCode, message: string): JoinAnswer {
  return { ok: false, code, message: message.length > joinWireLimits.maxMessageChars ? `${message.slice(0, joinWireLimits.maxMessageChars - 3)}...` : message }
}

export function decodeJoinRequest(bytes: Uint8Array): Decoded<JoinRequest> {
  return decodeWith(requestSchema, bytes, joinWireLimits.maxRequestBytes, 'join request')
}

export function decodeJoinAnswer(bytes: Uint8Array): Decoded<JoinAnswer> {
  return decodeWith(answerSchema, bytes, joinWireLimits.maxAnswerBytes, 'join answer')
}

function decodeWith<T>(schema: z.ZodType<T>, bytes: Uint8Array, maxBytes: number, what: string): Decoded<T> {
  if (bytes.length > maxBytes) return { ok: false, reason: `${what} of ${bytes.length} bytes exceeds ${maxBytes}` }
  const decoded = decodeCbor(bytes)
  if (!decoded.ok) return { ok: false, reason: `${what}: ${decoded.reason}` }
  const parsed = schema.safeParse(decoded.value)
  if (!parsed.success) return { ok: false, reason: `${what}: ${parsed.error.issues.slice(0, 3).map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ')}` }
  return { ok: true, value: parsed.data }
}
