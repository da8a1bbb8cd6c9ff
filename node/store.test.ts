// Proves the level store keeps what the core persisted across a reopen (term, votedFor, the adopted
// election timeout, the document with every appended increment), compacts increments into one saved document at open,
// and refuses a data directory that belongs to another cluster or has no genesis.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { afterEach, describe, expect, it } from 'vitest'
import { actorOf, asJobId, asNodeId, asTerm, createGenesis, loadDocument } from '../consensus/index.ts'
import { ConsensusStore, GenesisMismatchError, MissingGenesisError } from './store.ts'

const nodeId = asNodeId('12D3KooWstoretest')
const genesis = createGenesis({ voters: [nodeId] })
const directories: string[] = []
const freshDir = async (): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'fabric-store-'))
  directories.push(dir)
  return dir
}
afterEach(async () => {
  for (const dir of directories.splice(0)) await rm(dir, { recursive: true, force: true })
})

describe('ConsensusStore', () => {
  it('starts a new data directory from the genesis at term 0', async () => {
    const dataDir = await freshDir()
    const { store, persisted, stats } = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis, syncWrites: false })
    expect(stats.fresh).toBe(true)
    expect(persisted.term).toBe(0)
    expect(persisted.votedFor).toBeNull()
    expect(persisted.electionTimeoutMs).toBeUndefined()
    expect(persisted.documentBytes).toEqual(genesis)
    await store.close()
  })

  it('reloads term, vote and every increment after a reopen, compacted into one document', async () => {
    const dataDir = await freshDir()
    const first = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis, syncWrites: false })
    let document = loadDocument(genesis, actorOf(nodeId, '01'))
    A.saveIncremental(document)
    for (let index = 0; index < 3; index++) {
      document = A.change(document, (draft) => { draft.origins[`node-${index}`] = index + 1 })
      await first.store.persist({ term: asTerm(index + 1), votedFor: nodeId, electionTimeoutMs: 150, documentIncrement: A.saveIncremental(document) })
    }
    await first.store.persist({ term: asTerm(5), votedFor: null, electionTimeoutMs: 2_400, documentIncrement: new Uint8Array(0) })
    await first.store.close()

    const second = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis, syncWrites: false })
    expect(second.persisted.term).toBe(5)
    expect(second.persisted.votedFor).toBeNull()
    expect(second.persisted.electionTimeoutMs).toBe(2_400)
    expect(second.stats.incrementsCompacted).toBe(3)
    expect(second.persisted.document?.origins).toEqual({ 'node-0': 1, 'node-1': 2, 'node-2': 3 })
    expect(A.getHeads(loadDocument(second.persisted.documentBytes, actorOf(nodeId, '03')))).toEqual(A.getHeads(document))
    await second.store.close()

    // Without a genesis (a restart with no --voters) the stored state is enough.
    const third = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis: null, syncWrites: false })
    expect(third.stats.incrementsCompacted).toBe(0)
    expect(third.persisted.document?.origins).toEqual({ 'node-0': 1, 'node-1': 2, 'node-2': 3 })
    await third.store.close()
  })

  it('keeps archived jobs across a reopen', async () => {
    const dataDir = await freshDir()
    const first = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis, syncWrites: false })
    const job = { id: asJobId('done-1'), name: 'done', state: 'finished' as const, node: nodeId, exitCode: 0, submittedAtMs: 1, finishedAtMs: 2 }
    const other = { ...job, id: asJobId('done-2'), exitCode: 3 }
    await first.store.archiveAll([job, other])
    expect(await first.store.archivedJob('missing')).toBeUndefined()
    await first.store.close()
    const second = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis, syncWrites: false })
    expect(await second.store.archivedJob('done-1')).toEqual(job)
    expect(await second.store.archivedJob('done-2')).toEqual(other)
    await second.store.close()
  })

  it('refuses a data directory of another cluster, and a new one without genesis', async () => {
    const dataDir = await freshDir()
    const { store } = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis, syncWrites: false })
    await store.close()
    const other = createGenesis({ voters: [asNodeId('someone-else')] })
    await expect(ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis: other, syncWrites: false })).rejects.toBeInstanceOf(GenesisMismatchError)
    await expect(ConsensusStore.open({ dataDir: await freshDir(), nodeId, actor: actorOf(nodeId, '02'), genesis: null, syncWrites: false })).rejects.toBeInstanceOf(MissingGenesisError)
  })
})
