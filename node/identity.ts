// The node's persistent Ed25519 identity: created on first start in the data directory and
// reloaded afterwards, so a restarted daemon keeps its libp2p peer id. The Fabric NodeId is
// that peer id's string form, which is also what the genesis committee lists.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
// consensus/types.ts, not the barrel: every CLI call loads this file and should not load Automerge with it.
import { asNodeId, type NodeId } from '../consensus/types.ts'

export const identityFileName = 'identity.key'
/** A protobuf-wrapped Ed25519 key is 68 bytes; anything far larger is not a key file of ours. */
const maxIdentityFileBytes = 4_096

export interface NodeIdentity {
  privateKey: PrivateKey
  peerId: PeerId
  nodeId: NodeId
  /** True when this call created the key (first start of this data directory). */
  created: boolean
}

export class IdentityFileError extends Error {
  override name = 'IdentityFileError'
  readonly path: string
  constructor(path: string, reason: string) {
    super(`identity file ${path} is unusable: ${reason}`)
    this.path = path
  }
}

export async function loadOrCreateIdentity(dataDir: string): Promise<NodeIdentity> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  return loadOrCreateKeyFile(join(dataDir, identityFileName))
}

/** An Ed25519 key kept in `path` (created there on first use): a node's identity, or a client's key. */
export async function loadOrCreateKeyFile(path: string): Promise<NodeIdentity> {
  let bytes: Uint8Array | null = null
  try {
    bytes = await readFile(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  if (bytes !== null) {
    if (bytes.length > maxIdentityFileBytes) throw new IdentityFileError(path, `${bytes.length} bytes is too large`)
    let privateKey: PrivateKey
    try {
      privateKey = privateKeyFromProtobuf(bytes)
    } catch (error) {
      throw new IdentityFileError(path, (error as Error).message)
    }
    if (privateKey.type !== 'Ed25519') throw new IdentityFileError(path, `key type ${privateKey.type}, expected Ed25519`)
    return withIds(privateKey, false)
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const privateKey = await generateKeyPair('Ed25519')
  // Write then rename: a crash mid-write never leaves a half key that would change the identity.
  const temporary = `${path}.tmp-${process.pid}`
  await writeFile(temporary, privateKeyToProtobuf(privateKey), { mode: 0o600, flush: true })
  await rename(temporary, path)
  return withIds(privateKey, true)
}

function withIds(privateKey: PrivateKey, created: boolean): NodeIdentity {
  const peerId = peerIdFromPrivateKey(privateKey)
  return { privateKey, peerId, nodeId: asNodeId(peerId.toString()), created }
}
