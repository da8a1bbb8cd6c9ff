// How the client commands (submit, jobs, job, logs, nodes, leader) reach a daemon: --node MULTIADDR,
// or else the daemon of a data directory (its addresses.json; --data, default $FABRIC_DATA or
// ~/.fabric), through a client libp2p host of their own (--key FILE, else the data directory's
// client.key that `fabric join` made, else an ephemeral key). Maps what can go wrong on the way to
// UserError with a hint. The commands load it when they run (the flags are connect-options.ts):
// it imports the client modules themselves, not node/index.ts, which would bring the whole daemon.
import type { Libp2p } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { existsSync } from 'node:fs'
import { AddressesFileError, readAddressesFile } from '../node/addresses-file.ts'
import { ClientConnectionError, ClientRequestError, pinMeshId } from '../node/client-connection.ts'
import { createClientHost } from '../node/client-host.ts'
import { meshIdPattern, type ClientErrorCode } from '../node/client-wire.ts'
import { IdentityFileError, loadOrCreateKeyFile } from '../node/identity.ts'
import type { ConnectFlags } from './connect-options.ts'
import { clientKeyPath } from './data-dir.ts'
import { positiveInteger } from './parse.ts'
import { UserError } from './user-error.ts'

export interface DaemonSession {
  libp2p: Libp2p
  target: Multiaddr
  /** Aborts after --timeout. */
  signal: AbortSignal
}

/** Opens a client host, runs `work` against the chosen daemon, and always stops the host. */
export async function withDaemon<T>(flags: ConnectFlags, work: (session: DaemonSession) => Promise<T>): Promise<T> {
  const { target, meshId: localMeshId } = await resolveTarget(flags)
  const meshId = flags.mesh ?? (process.env.FABRIC_MESH || undefined) ?? localMeshId
  if (meshId !== undefined && !meshIdPattern.test(meshId)) throw new UserError(`${flags.mesh !== undefined ? '--mesh' : 'FABRIC_MESH'}: "${meshId.slice(0, 80)}" is not a mesh id`, 'a mesh id is 64 lowercase hex digits: `fabric mesh` prints it')
  const timeoutMs = positiveInteger('--timeout', flags.timeout)
  let privateKey
  const keyFile = flags.key ?? (existsSync(clientKeyPath(flags.data)) ? clientKeyPath(flags.data) : undefined)
  if (keyFile !== undefined) {
    try {
      privateKey = (await loadOrCreateKeyFile(keyFile)).privateKey
    } catch (error) {
      if (error instanceof IdentityFileError) throw new UserError(error.message, 'point --key at an Ed25519 key file, or leave it out for a fresh key')
      throw error
    }
  }
  const libp2p = await createClientHost(privateKey === undefined ? {} : { privateKey })
  if (meshId !== undefined) pinMeshId(libp2p, meshId)
  try {
    return await work({ libp2p, target, signal: AbortSignal.timeout(timeoutMs) })
  } catch (error) {
    throw asUserError(error, target.toString(), timeoutMs)
  } finally {
    await libp2p.stop()
  }
}

/** The daemon to ask, and its mesh when a local daemon's addresses.json says it. */
async function resolveTarget(flags: ConnectFlags): Promise<{ target: Multiaddr; meshId?: string }> {
  if (flags.node !== undefined) {
    try {
      return { target: multiaddr(flags.node) }
    } catch (error) {
      throw new UserError(`--node: "${flags.node}" is not a multiaddr (${(error as Error).message})`, 'it looks like /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...')
    }
  }
  let addresses
  try {
    addresses = await readAddressesFile(flags.data)
  } catch (error) {
    if (error instanceof AddressesFileError) throw new UserError(`no local daemon found: ${error.message}`, 'start one with `fabric node start --data DIR`, or pass --node MULTIADDR or --data DIR')
    throw error
  }
  if (!isProcessAlive(addresses.pid)) {
    throw new UserError(`the daemon of ${flags.data} (pid ${addresses.pid}) is not running; its addresses.json is left from an earlier run`, 'start it with `fabric node start`, or pass --node MULTIADDR')
  }
  const first = addresses.addresses[0]!
  try {
    return { target: multiaddr(first), ...(addresses.meshId === undefined ? {} : { meshId: addresses.meshId }) }
  } catch (error) {
    throw new UserError(`${flags.data}/addresses.json lists "${first}", which is not a multiaddr (${(error as Error).message})`)
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const hints: Partial<Record<ClientErrorCode, string>> = {
  'invalid-spec': 'fix the spec (examples/ has some), or use --cmd for a plain command',
  'not-acknowledged': 'the daemon keeps offering the job to the voters; check it with `fabric job ID`',
  busy: 'try again shortly',
  unavailable: 'the answer is not available right now; try again, or ask another node with --node',
  'not-found': 'list jobs with `fabric jobs`',
  internal: "this is a daemon bug: its log (stderr of `fabric node start`) says more",
  'wrong-mesh': 'the daemon asked belongs to another mesh than --mesh or $FABRIC_MESH names: ask a daemon of your mesh, or fix the id (`fabric mesh` prints a daemon\'s)',
  unauthorized: 'this client key has no role that allows it: get an invite from the mesh\'s admin and run `fabric join TOKEN` (or pass --key FILE with a key that has the role)',
}

function asUserError(error: unknown, target: string, timeoutMs: number): unknown {
  if (error instanceof UserError) return error
  if (error instanceof ClientRequestError) {
    const jobNote = error.jobId !== undefined && error.code === 'not-acknowledged' ? ` (job id ${error.jobId})` : ''
    return new UserError(`${target} answered ${error.code}: ${error.message}${jobNote}`, hints[error.code])
  }
  if (error instanceof ClientConnectionError) return new UserError(`cannot get an answer from ${target}: ${error.reason}`, 'is the daemon running? choose one with --node MULTIADDR or --data DIR')
  const name = (error as Error | undefined)?.name
  if (name === 'TimeoutError' || name === 'AbortError') return new UserError(`no answer from ${target} within ${timeoutMs} ms`, 'raise --timeout, or check the daemon')
  return error
}
