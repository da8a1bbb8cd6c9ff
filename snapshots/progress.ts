// Progress of a fetch as events: bytes and chunks done of the total, average rate and ETA.
// Throttled to one event per interval (the last event, `done`, always goes out), and timed by an
// injected clock so the numbers are testable.
import type { Cid } from './cid.ts'

export interface FetchProgress {
  cid: Cid
  phase: 'manifest' | 'chunks' | 'done'
  /** Distinct chunks (and their bytes) this fetch has to bring: the snapshot's, less those stored before. */
  chunksTotal: number
  bytesTotal: number
  chunksFetched: number
  bytesFetched: number
  /** Distinct chunks of the snapshot already in the store when the fetch began (never fetched). */
  chunksAlreadyStored: number
  /** Average since the chunk phase began. */
  bytesPerSecond: number
  /** Estimated time left at that rate; null until something has arrived. */
  etaMs: number | null
  corruptChunks: number
  holdersFailed: number
}

export type ProgressListener = (progress: FetchProgress) => void

export class ProgressMeter {
  readonly #nowMs: () => number
  readonly #intervalMs: number
  readonly #listener: ProgressListener | undefined
  readonly #progress: FetchProgress
  #startedAtMs: number
  #lastEmitMs = -Infinity

  constructor(options: { cid: Cid; nowMs: () => number; intervalMs: number; listener?: ProgressListener }) {
    this.#nowMs = options.nowMs
    this.#intervalMs = options.intervalMs
    this.#listener = options.listener
    this.#startedAtMs = options.nowMs()
    this.#progress = {
      cid: options.cid, phase: 'manifest', chunksTotal: 0, bytesTotal: 0, chunksFetched: 0, bytesFetched: 0,
      chunksAlreadyStored: 0, bytesPerSecond: 0, etaMs: null, corruptChunks: 0, holdersFailed: 0,
    }
  }

  get current(): Readonly<FetchProgress> {
    return this.#progress
  }

  startChunks(totals: { chunksTotal: number; bytesTotal: number; chunksAlreadyStored: number }): void {
    Object.assign(this.#progress, totals, { phase: 'chunks' })
    this.#startedAtMs = this.#nowMs()
    this.#emit(true)
  }

  chunkFetched(sizeBytes: number): void {
    this.#progress.chunksFetched++
    this.#progress.bytesFetched += sizeBytes
    this.#emit(false)
  }

  corruptChunk(): void {
    this.#progress.corruptChunks++
  }

  holderFailed(): void {
    this.#progress.holdersFailed++
  }

  finish(): void {
    this.#progress.phase = 'done'
    this.#emit(true)
  }

  #emit(force: boolean): void {
    const now = this.#nowMs()
    if (this.#listener === undefined || (!force && now - this.#lastEmitMs < this.#intervalMs)) return
    this.#lastEmitMs = now
    const progress = this.#progress
    const elapsedMs = now - this.#startedAtMs
    progress.bytesPerSecond = elapsedMs > 0 ? Math.round((progress.bytesFetched * 1_000) / elapsedMs) : 0
    progress.etaMs = progress.bytesPerSecond > 0 ? Math.round(((progress.bytesTotal - progress.bytesFetched) * 1_000) / progress.bytesPerSecond) : null
    this.#listener({ ...progress })
  }
}
