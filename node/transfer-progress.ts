// Progress of one phase of a snapshot's life on this daemon (packing a checkpoint, a peer fetching
// it to hold a replica, fetching it to restore) as the client protocol's `progress` frames: bytes and
// chunks done of the total, the average rate since the phase began and the ETA at that rate.
// Throttled to one update per interval (a phase's first and last always go out); the clock is injected.
import type { FetchProgress } from '../snapshots/index.ts'
import type { ProgressFrame, progressPhases } from './client-wire.ts'

export type ProgressPhase = (typeof progressPhases)[number]
export type ProgressListener = (frame: ProgressFrame) => void

/** Updates per phase at most this often (the CLI redraws its bar on each). */
export const progressIntervalMs = 250

export class PhaseMeter {
  readonly #base: Pick<ProgressFrame, 'jobId' | 'node' | 'phase' | 'peer'>
  readonly #nowMs: () => number
  readonly #listener: ProgressListener
  readonly #startedMs: number
  #lastMs = -Infinity
  #bytesTotal = 0
  #chunksTotal = 0

  constructor(base: { jobId: string; node: string; phase: ProgressPhase; peer?: string }, nowMs: () => number, listener: ProgressListener) {
    this.#base = base.peer === undefined ? { jobId: base.jobId, node: base.node, phase: base.phase } : { jobId: base.jobId, node: base.node, phase: base.phase, peer: base.peer }
    this.#nowMs = nowMs
    this.#listener = listener
    this.#startedMs = nowMs()
  }

  total(bytesTotal: number, chunksTotal: number): void {
    this.#bytesTotal = bytesTotal
    this.#chunksTotal = chunksTotal
  }

  /** The phase is over: everything of the total is done (no time left). */
  finish(): void {
    this.#emit(this.#bytesTotal, this.#chunksTotal, true, true)
  }

  /** Reports `bytesDone` and `chunksDone` (throttled unless `force`). */
  update(bytesDone: number, chunksDone: number, force = false): void {
    this.#emit(bytesDone, chunksDone, force, false)
  }

  #emit(bytesDone: number, chunksDone: number, force: boolean, finished: boolean): void {
    const now = this.#nowMs()
    if (!force && now - this.#lastMs < progressIntervalMs) return
    this.#lastMs = now
    const elapsedMs = now - this.#startedMs
    const bytesPerSecond = elapsedMs > 0 ? Math.round((bytesDone * 1_000) / elapsedMs) : 0
    const left = Math.max(0, this.#bytesTotal - bytesDone)
    const etaMs = finished ? 0 : bytesPerSecond > 0 ? Math.round((left * 1_000) / bytesPerSecond) : null
    this.#listener({ type: 'progress', ...this.#base, bytesDone, bytesTotal: Math.max(this.#bytesTotal, bytesDone), chunksDone, chunksTotal: Math.max(this.#chunksTotal, chunksDone), bytesPerSecond, etaMs })
  }
}

/** A fetch's progress (snapshots/progress.ts) as a frame of `phase`. */
export function fetchFrame(progress: FetchProgress, base: { jobId: string; node: string; phase: ProgressPhase; peer?: string }): ProgressFrame {
  return {
    type: 'progress',
    jobId: base.jobId,
    node: base.node,
    phase: base.phase,
    ...(base.peer === undefined ? {} : { peer: base.peer }),
    bytesDone: progress.bytesFetched,
    bytesTotal: progress.bytesTotal,
    chunksDone: progress.chunksFetched,
    chunksTotal: progress.chunksTotal,
    bytesPerSecond: progress.bytesPerSecond,
    etaMs: progress.phase === 'done' ? 0 : progress.etaMs,
  }
}

/** Jobs whose latest restore frames are remembered (a follower may ask after a quick restore ended). */
export const maxRestoresRemembered = 64

/**
 * Who follows the restores on this node, per replica; the latest frame of each phase of a replica's
 * latest restore is replayed to a follower that comes late (loopback restores can be over before
 * the follower hears of the move).
 */
export class RestoreProgressHub {
  readonly #listeners = new Map<string, Set<ProgressListener>>()
  readonly #recent = new Map<string, Map<string, ProgressFrame>>()

  listen(jobId: string, listener: ProgressListener): () => void {
    for (const frame of this.#recent.get(jobId)?.values() ?? []) listener(frame)
    let listeners = this.#listeners.get(jobId)
    if (listeners === undefined) this.#listeners.set(jobId, (listeners = new Set()))
    listeners.add(listener)
    return () => {
      listeners.delete(listener)
      if (listeners.size === 0) this.#listeners.delete(jobId)
    }
  }

  publish(jobId: string, frame: ProgressFrame): void {
    let recent = this.#recent.get(jobId)
    if (recent === undefined) {
      if (this.#recent.size >= maxRestoresRemembered) this.#recent.delete(this.#recent.keys().next().value!)
      this.#recent.set(jobId, (recent = new Map()))
    }
    // A new restore of the replica starts its memory afresh.
    if (frame.phase === 'fetch' && recent.has('restore')) recent.clear()
    recent.set(frame.phase, frame)
    for (const listener of this.#listeners.get(jobId) ?? []) listener(frame)
  }
}
