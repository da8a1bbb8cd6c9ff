// Proves a data directory keeps its identity: created once, the same peer id on every later load,
// and a damaged key file refused rather than silently replaced (that would change the NodeId).
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { IdentityFileError, identityFileName, loadOrCreateIdentity } from './identity.ts'

const directories: string[] = []
afterEach(async () => {
  for (const dir of directories.splice(0)) await rm(dir, { recursive: true, force: true })
})

describe('node identity', () => {
  it('is created on first load and reloaded unchanged afterwards', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-identity-'))
    directories.push(dataDir)
    const first = await loadOrCreateIdentity(dataDir)
    const second = await loadOrCreateIdentity(dataDir)
    expect(first.created).toBe(true)
    expect(second.created).toBe(false)
    expect(second.nodeId).toBe(first.nodeId)
    expect(first.privateKey.type).toBe('Ed25519')
    expect(first.nodeId).toBe(first.peerId.toString())
  })

  it('refuses a damaged key file', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-identity-'))
    directories.push(dataDir)
    await writeFile(join(dataDir, identityFileName), new Uint8Array([1, 2, 3]))
    await expect(loadOrCreateIdentity(dataDir)).rejects.toBeInstanceOf(IdentityFileError)
  })
})
