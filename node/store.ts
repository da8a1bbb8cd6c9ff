// The daemon's durable consensus state in a level store in the data directory: term, votedFor and
// the cluster document (one saved document plus the increments appended since). The Shuttle
// awaits `persist` before it performs the sends of the same step, so nothing is acknowledged
// before it is durable (raft's rule). At open the document is compacted into one saved document.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { Level } from 'level'
import { concatBytes, loadDocument, type ArchivedJob, type Document, type JobUsage, type NodeId, type PersistedIncrement, type PersistedPeer } from '../consensus/index.ts'

export const storeDirectoryName = 'consensus.level'
/** Increments appended between compactions (one per persisting step); past this we compact online. */
export const maxIncrementsBeforeCompaction = 10_000

const keys = {
  genesisHash: 'meta/genesis-sha256',
  /** The genesis bytes themselves, kept so this node can hand them to a peer joining by invite. */
  genesis: 'meta/genesis',
  hardState: 'hard-state',
  documentBase: 'document/base',
  incrementPrefix: 'document/increment/',
  archivePrefix: 'archive/job/',
  localRunPrefix: 'local-run/',
} as const
const incrementKey = (index: number): string => `${keys.incrementPrefix}${String(index).padStart(16, '0')}`

export class GenesisMismatchError extends Error {
  override name = 'GenesisMismatchError'
  readonly dataDir: string
  constructor(dataDir: string, stored: string, given: string) {
    super(`data directory ${dataDir} belongs to a cluster with genesis ${stored.slice(0, 16)}..., not ${given.slice(0, 16)}...`)
    this.dataDir = dataDir
  }
}

export class MissingGenesisError extends Error {
  override name = 'MissingGenesisError'
  readonly dataDir: string
  constructor(dataDir: string) {
    super(`data directory ${dataDir} holds no cluster state and no genesis was given`)
    this.dataDir = dataDir
  }
}

export interface ConsensusStoreInit {
  dataDir: string
  nodeId: NodeId
  /** The Automerge actor the document is loaded to write with (the node's identity and this boot's incarnation). */
  actor: string
  /** The cluster's genesis document; may be null when the data directory already holds state. */
  genesis: Uint8Array | null
  /** fsync every persist (raft's durability); off only for tests that do not crash the machine, and never for a voter's persists (persist's `durable`). */
  syncWrites?: boolean
}

/**
 * A job this node's runtime started, kept until the job leaves the document: after a crash the
 * restarted daemon knows which processes were its own, and which runs already ended (and how).
 */
export interface LocalRunRecord {
  jobId: string
  /** The assignment the run belongs to. */
  term: number
  seq: number
  /** The job's first process and its start time in clock ticks since boot (a reused PID has another). */
  pid: number
  pidStartTicks: number | null
  startedAtMs: number
  /** Set once the run ended and its exit was handed to the core. */
  exitCode: number | null
  /** What the run used, kept with its exit so a replayed exit reports it too (absent in records older than usage). */
  usage?: JobUsage
  /** The GPU device indices the run was given (absent when it asked for none). */
  gpus?: number[]
}

/** Archived jobs one listing reads at most (the archive is keyed by job id, not by time). */
export const maxArchiveScan = 10_000
export const maxLocalRuns = 100_000

export interface StoreStats { documentBytes: number; incrementsCompacted: number; fresh: boolean }

export class ConsensusStore {
  readonly #db: Level<string, Uint8Array>
  readonly #syncWrites: boolean
  /** SHA-256 (hex) of the genesis document: the mesh's id. */
  #genesisHash = ''
  #nextIncrement = 0
  #closed = false

  private constructor(db: Level<string, Uint8Array>, syncWrites: boolean) {
    this.#db = db
    this.#syncWrites = syncWrites
  }

  /** Opens (or creates) the store and returns what the Peer core boots from. */
  static async open(init: ConsensusStoreInit): Promise<{ store: ConsensusStore; persisted: PersistedPeer; stats: StoreStats }> {
    const db = new Level<string, Uint8Array>(join(init.dataDir, storeDirectoryName), { keyEncoding: 'utf8', valueEncoding: 'view' })
    await db.open()
    const store = new ConsensusStore(db, init.syncWrites ?? true)
    try {
      const loaded = await store.#load(init)
      return { store, ...loaded }
    } catch (error) {
      await db.close()
      throw error
    }
  }

  async #load(init: ConsensusStoreInit): Promise<{ persisted: PersistedPeer; stats: StoreStats }> {
    const storedHash = await this.#getText(keys.genesisHash)
    const givenHash = init.genesis === null ? null : sha256(init.genesis)
    if (storedHash === undefined) {
      if (init.genesis === null || givenHash === null) throw new MissingGenesisError(init.dataDir)
      await this.#db.batch(
        [
          { type: 'put', key: keys.genesisHash, value: utf8(givenHash) },
          { type: 'put', key: keys.hardState, value: utf8(JSON.stringify({ term: 0, votedFor: null })) },
          { type: 'put', key: keys.documentBase, value: init.genesis },
          { type: 'put', key: keys.genesis, value: init.genesis },
        ],
        { sync: this.#syncWrites },
      )
    } else if (givenHash !== null && givenHash !== storedHash) {
      throw new GenesisMismatchError(init.dataDir, storedHash, givenHash)
    }
    this.#genesisHash = storedHash ?? givenHash!
    // electionTimeoutMs is absent from stores written before it was hard state: the core then waits the largest T.
    const hard = JSON.parse((await this.#getText(keys.hardState)) ?? '{"term":0,"votedFor":null}') as { term: number; votedFor: NodeId | null; electionTimeoutMs?: number }
    const stored = await this.#db.get(keys.documentBase)
    if (stored === undefined) throw new Error(`store ${init.dataDir} has a genesis hash but no document`)
    const base = plain(stored)
    const increments: Uint8Array[] = []
    const incrementKeys: string[] = []
    for await (const [key, value] of this.#db.iterator({ gte: keys.incrementPrefix, lt: `${keys.incrementPrefix}~` })) {
      incrementKeys.push(key)
      increments.push(plain(value))
    }
    const document = loadDocument(concatBytes([base, ...increments]), init.actor)
    let documentBytes: Uint8Array = base
    if (increments.length > 0) {
      // Compact: one saved document replaces the base and its increments, atomically.
      documentBytes = A.save(document)
      await this.#db.batch(
        [{ type: 'put', key: keys.documentBase, value: documentBytes }, ...incrementKeys.map((key) => ({ type: 'del' as const, key }))],
        { sync: this.#syncWrites },
      )
    }
    return {
      persisted: { term: hard.term, votedFor: hard.votedFor, ...(typeof hard.electionTimeoutMs === 'number' ? { electionTimeoutMs: hard.electionTimeoutMs } : {}), documentBytes, document },
      stats: { documentBytes: documentBytes.length, incrementsCompacted: increments.length, fresh: storedHash === undefined },
    }
  }

  /** Durable when the promise resolves: hard state and the document increment in one atomic batch. */
  /** `durable`: fsync whatever syncWrites says (a voter's term, vote and acknowledged document: commits count on them). */
  async persist(state: PersistedIncrement, durable = false): Promise<void> {
    if (this.#closed) throw new Error('persist after close')
    const operations: { type: 'put'; key: string; value: Uint8Array }[] = [
      { type: 'put', key: keys.hardState, value: utf8(JSON.stringify({ term: state.term, votedFor: state.votedFor, electionTimeoutMs: state.electionTimeoutMs })) },
    ]
    if (state.documentIncrement.length > 0) {
      if (this.#nextIncrement >= maxIncrementsBeforeCompaction) throw new Error(`more than ${maxIncrementsBeforeCompaction} increments without compaction`)
      operations.push({ type: 'put', key: incrementKey(this.#nextIncrement++), value: state.documentIncrement })
    }
    await this.#db.batch(operations, { sync: this.#syncWrites || durable })
  }

  /** Online compaction: the caller hands the current document (the core's view) when increments pile up. */
  async compact(document: Document): Promise<void> {
    if (this.#nextIncrement === 0) return
    const operations: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = [{ type: 'put', key: keys.documentBase, value: A.save(document) }]
    for (let index = 0; index < this.#nextIncrement; index++) operations.push({ type: 'del', key: incrementKey(index) })
    await this.#db.batch(operations, { sync: this.#syncWrites })
    this.#nextIncrement = 0
  }

  get incrementCount(): number { return this.#nextIncrement }

  /** The mesh's id: the SHA-256 (hex) of its genesis document. */
  get genesisHash(): string { return this.#genesisHash }

  /** The genesis document (undefined in a store made before it was kept). */
  async genesis(): Promise<Uint8Array | undefined> {
    const bytes = await this.#db.get(keys.genesis)
    return bytes === undefined ? undefined : plain(bytes)
  }

  /** Finished jobs leave the document for this archive (the document keeps active state only): one write for all of a step's. */
  async archiveAll(jobs: readonly ArchivedJob[]): Promise<void> {
    if (this.#closed) throw new Error('archive after close')
    if (jobs.length === 0) return
    await this.#db.batch(jobs.map((job) => ({ type: 'put' as const, key: `${keys.archivePrefix}${job.id}`, value: utf8(JSON.stringify(job)) })), { sync: this.#syncWrites })
  }

  async archivedJob(jobId: string): Promise<ArchivedJob | undefined> {
    const text = await this.#getText(`${keys.archivePrefix}${jobId}`)
    return text === undefined ? undefined : (JSON.parse(text) as ArchivedJob)
  }

  /** Archived jobs, at most `limit` (read in key order: callers sort). */
  async archivedJobs(limit: number): Promise<ArchivedJob[]> {
    const jobs: ArchivedJob[] = []
    for await (const value of this.#db.values({ gte: keys.archivePrefix, lt: `${keys.archivePrefix}~`, limit: Math.min(limit, maxArchiveScan) })) {
      jobs.push(JSON.parse(new TextDecoder().decode(value)) as ArchivedJob)
    }
    return jobs
  }

  async putLocalRun(run: LocalRunRecord): Promise<void> {
    if (this.#closed) throw new Error('putLocalRun after close')
    await this.#db.put(`${keys.localRunPrefix}${run.jobId}`, utf8(JSON.stringify(run)), { sync: this.#syncWrites })
  }

  async deleteLocalRun(jobId: string): Promise<void> {
    if (this.#closed) return
    await this.#db.del(`${keys.localRunPrefix}${jobId}`, { sync: this.#syncWrites })
  }

  async localRuns(): Promise<LocalRunRecord[]> {
    const runs: LocalRunRecord[] = []
    for await (const value of this.#db.values({ gte: keys.localRunPrefix, lt: `${keys.localRunPrefix}~`, limit: maxLocalRuns })) {
      runs.push(JSON.parse(new TextDecoder().decode(value)) as LocalRunRecord)
    }
    return runs
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#db.close()
  }

  async #getText(key: string): Promise<string | undefined> {
    const value = await this.#db.get(key)
    return value === undefined ? undefined : new TextDecoder().decode(value)
  }
}

/** level hands back Buffers; the core gets plain Uint8Arrays (a view, no copy). */
const plain = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

