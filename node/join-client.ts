// The joining side of /fabric/join/1.0.0: a node (before its daemon starts, with its own identity)
// or a client (with its client key) presents an invite to a node of the mesh and learns its role and
// the mesh's genesis document. Bootstrap addresses come from the caller or else from the invite;
// each is tried in turn, in rounds, until one answers or the time is up. A refusal that trying
// again cannot change (a bad signature, an expired or used invite) ends the attempt at once.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeFrame, FrameReader } from '../codec/index.ts'
import { createClientHost } from './client-host.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { decodeInvite, type InvitableRole, type Invite } from './invite-token.ts'
import { storeDirectoryName } from './store.ts'
import { decodeJoinAnswer, encodeJoinRequest, joinProtocol, joinWireLimits, joinWireVersion, type JoinRefusalCode } from './join-wire.ts'

export const defaultJoinTimeoutMs = 60_000
/** One attempt at one address: the dial plus the node's wait for the admission to be durable. */
export const joinAttemptTimeoutMs = 15_000
/** Pause between rounds over the bootstrap addresses. */
export const joinRetryMs = 1_000

/** Codes after which asking again (here or elsewhere) cannot succeed. */
const finalCodes: ReadonlySet<JoinRefusalCode> = new Set(['malformed', 'bad-signature', 'wrong-mesh', 'expired', 'wrong-peer', 'used', 'open-mesh', 'wrong-role', 'invite-needed'])

/** A node of the mesh refused the invite (or the token could not be read). */
export class JoinRefusedError extends Error {
  override name = 'JoinRefusedError'
  readonly code: JoinRefusalCode
  readonly node: string | null
  constructor(facts: { code: JoinRefusalCode; message: string; node: string | null }) {
    super(facts.node === null ? facts.message : `${facts.node} refused the invite: ${facts.message}`)
    this.code = facts.code
    this.node = facts.node
  }
}

/** No node of the mesh could be reached or gave a usable answer in time. */
export class JoinFailedError extends Error {
  override name = 'JoinFailedError'
  readonly attempts: string[]
  constructor(attempts: string[], timeoutMs: number) {
    super(`no node of the mesh admitted this peer within ${timeoutMs} ms; last attempts:\n  ${attempts.slice(-4).join('\n  ')}`)
    this.attempts = attempts
  }
}

export interface JoinResult {
  role: InvitableRole
  meshId: string
  admin: string
  /** The genesis document (its SHA-256 is the mesh id). */
  genesis: Uint8Array
  /** The node that admitted this peer, and the address it was reached at. */
  node: string
  via: string
  invite: Invite
}

export interface JoinOptions {
  /** This peer's key: a node's identity or a client's key. */
  privateKey: PrivateKey
  token: string
  /** Overrides the invite's bootstrap addresses. */
  bootstrap?: readonly string[]
  timeoutMs?: number
  signal?: AbortSignal
}

export async function joinMesh(options: JoinOptions): Promise<JoinResult> {
  const decoded = decodeInvite(options.token)
  if (!decoded.ok) throw new JoinRefusedError({ code: decoded.code, message: decoded.reason, node: null })
  const invite = decoded.invite
  const addresses = options.bootstrap !== undefined && options.bootstrap.length > 0 ? [...options.bootstrap] : invite.bootstrap
  if (addresses.length === 0) throw new JoinRefusedError({ code: 'bad-request', message: 'the invite names no bootstrap address; give one (a node of the mesh, /ip4/.../tcp/.../p2p/<id>)', node: null })
  return askInRounds(options.privateKey, addresses, options, (host, address) => askOnce(host, address, options.token, invite, options.signal))
}

/**
 * Asks each address in turn, in rounds, with a client host of `privateKey`, until one answers, a
 * refusal that asking again cannot change, or the time is up (JoinFailedError with the last attempts).
 */
async function askInRounds<T>(privateKey: PrivateKey, addresses: readonly string[], options: { timeoutMs?: number | undefined; signal?: AbortSignal | undefined }, ask: (host: Awaited<ReturnType<typeof createClientHost>>, address: string) => Promise<T>): Promise<T> {
  const timeoutMs = options.timeoutMs ?? defaultJoinTimeoutMs
  const deadline = Date.now() + timeoutMs
  const attempts: string[] = []
  const host = await createClientHost({ privateKey })
  try {
    for (;;) {
      for (const address of addresses) {
        options.signal?.throwIfAborted()
        const result = await ask(host, address).then(
          (value) => ({ value }),
          (error: unknown) => {
            if (error instanceof JoinRefusedError && finalCodes.has(error.code)) throw error
            attempts.push(`${address}: ${(error as Error).message}`)
            return null
          },
        )
        if (result !== null) return result.value
      }
      if (Date.now() + joinRetryMs >= deadline) throw new JoinFailedError(attempts, timeoutMs)
      await new Promise((resolve) => setTimeout(resolve, joinRetryMs))
    }
  } finally {
    await host.stop()
  }
}

async function askOnce(host: Awaited<ReturnType<typeof createClientHost>>, address: string, token: string, invite: Invite, signal: AbortSignal | undefined): Promise<JoinResult> {
  const attemptSignal = AbortSignal.any([AbortSignal.timeout(joinAttemptTimeoutMs), ...(signal ? [signal] : [])])
  const stream = await host.dialProtocol(multiaddr(address), joinProtocol, { signal: attemptSignal })
  try {
    const frames = new FrameReader(stream, { maxFrameBytes: joinWireLimits.maxAnswerBytes, maxBufferedBytes: joinWireLimits.maxAnswerBytes + 64 })
    if (!stream.send(encodeFrame(encodeJoinRequest({ v: joinWireVersion, token })))) await stream.onDrain({ signal: attemptSignal })
    const decoded = decodeJoinAnswer(await frames.read({ signal: attemptSignal }))
    if (!decoded.ok) throw new Error(`unreadable answer: ${decoded.reason}`)
    const answer = decoded.value
    if (!answer.ok) throw new JoinRefusedError({ code: answer.code, message: answer.message, node: address })
    const genesis = answer.genesis
    const hash = createHash('sha256').update(genesis).digest('hex')
    // The invite names the mesh; a node serving another mesh's genesis is not one to boot from.
    if (hash !== invite.meshId || answer.meshId !== invite.meshId) throw new Error(`it answered for mesh ${answer.meshId.slice(0, 16)}... with a genesis hashing to ${hash.slice(0, 16)}..., but the invite is for mesh ${invite.meshId.slice(0, 16)}...`)
    await stream.close().catch(() => {})
    return { role: answer.role, meshId: answer.meshId, admin: answer.admin, genesis, node: answer.node, via: address, invite }
  } catch (error) {
    stream.abort(error as Error)
    throw error
  }
}

export interface NodeJoin {
  /** The genesis to start the daemon from, or null when the data directory already holds the mesh's state. */
  genesis: Uint8Array | null
  /** The bootstrap addresses to dial: the caller's, else the invite's. */
  bootstrap: string[]
  joined: JoinResult | null
}

/**
 * `fabric node start --invite TOKEN`: before the daemon starts, join with the node's own identity
 * and return the genesis it boots from. A data directory that already holds cluster state (a
 * restart) has joined before: nothing is asked then.
 */
export async function joinAsNode(options: { dataDir: string; token: string; bootstrap: readonly string[]; timeoutMs?: number }): Promise<NodeJoin> {
  const decoded = decodeInvite(options.token)
  if (!decoded.ok) throw new JoinRefusedError({ code: decoded.code, message: decoded.reason, node: null })
  const bootstrap = options.bootstrap.length > 0 ? [...options.bootstrap] : decoded.invite.bootstrap
  if (decoded.invite.role !== 'node') throw new JoinRefusedError({ code: 'wrong-role', message: `this invite admits a ${decoded.invite.role}, not a node: use it with \`fabric join TOKEN\` (a client)`, node: null })
  if (existsSync(join(options.dataDir, storeDirectoryName))) return { genesis: null, bootstrap, joined: null }
  const identity = await loadOrCreateIdentity(options.dataDir)
  const joined = await joinMesh({ privateKey: identity.privateKey, token: options.token, bootstrap, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) })
  return { genesis: joined.genesis, bootstrap, joined }
}

/**
 * `fabric node start --bootstrap ADDR` on a fresh data directory, with neither --voters nor an
 * invite: ask the bootstrap nodes for the mesh's genesis. An open mesh hands it out (its hash is the
 * mesh id; `meshId` pins it, else the first answer is trusted); a closed mesh refuses
 * (`invite-needed`, a JoinRefusedError). A data directory that holds cluster state asks nothing.
 */
export async function genesisFromBootstrap(options: { dataDir: string; bootstrap: readonly string[]; meshId?: string; timeoutMs?: number; signal?: AbortSignal }): Promise<{ genesis: Uint8Array; meshId: string; node: string; via: string } | null> {
  if (existsSync(join(options.dataDir, storeDirectoryName))) return null
  const identity = await loadOrCreateIdentity(options.dataDir)
  return askInRounds(identity.privateKey, options.bootstrap, options, (host, address) => askGenesis(host, address, options.meshId, options.signal))
}

async function askGenesis(host: Awaited<ReturnType<typeof createClientHost>>, address: string, meshId: string | undefined, signal: AbortSignal | undefined): Promise<{ genesis: Uint8Array; meshId: string; node: string; via: string }> {
  const attemptSignal = AbortSignal.any([AbortSignal.timeout(joinAttemptTimeoutMs), ...(signal ? [signal] : [])])
  const stream = await host.dialProtocol(multiaddr(address), joinProtocol, { signal: attemptSignal })
  try {
    const frames = new FrameReader(stream, { maxFrameBytes: joinWireLimits.maxAnswerBytes, maxBufferedBytes: joinWireLimits.maxAnswerBytes + 64 })
    if (!stream.send(encodeFrame(encodeJoinRequest({ v: joinWireVersion })))) await stream.onDrain({ signal: attemptSignal })
    const decoded = decodeJoinAnswer(await frames.read({ signal: attemptSignal }))
    if (!decoded.ok) throw new Error(`unreadable answer: ${decoded.reason}`)
    const answer = decoded.value
    if (!answer.ok) throw new JoinRefusedError({ code: answer.code, message: answer.message, node: address })
    const hash = createHash('sha256').update(answer.genesis).digest('hex')
    if (hash !== answer.meshId) throw new Error(`it answered for mesh ${answer.meshId.slice(0, 16)}... with a genesis hashing to ${hash.slice(0, 16)}...`)
    if (meshId !== undefined && hash !== meshId) throw new JoinRefusedError({ code: 'wrong-mesh', message: `it serves mesh ${hash.slice(0, 16)}..., not the mesh ${meshId.slice(0, 16)}... that --mesh names`, node: address })
    await stream.close().catch(() => {})
    return { genesis: answer.genesis, meshId: hash, node: answer.node, via: address }
  } catch (error) {
    stream.abort(error as Error)
    throw error
  }
}
