// Clients waiting on this daemon for a checkpoint of a replica it runs (`fabric checkpoint`): each
// hears the progress of the checkpoint taken for it (or of one already under way, whose snapshot
// answers it too) and its outcome. The core answers the request first (`checkpoint-answer`): a
// refusal ends the wait at once. Bounded: past maxCheckpointWaiters, new requests are refused.
import type { JobId, NodeId } from '../consensus/index.ts'
import type { ProgressFrame } from './client-wire.ts'

export const maxCheckpointWaiters = 256

export interface CheckpointMade { cid: string; holders: NodeId[]; sizeBytes: number; chunks: number }

interface Waiter {
  requestId: string
  jobId: JobId
  onProgress: (frame: ProgressFrame) => void
  resolve: (made: CheckpointMade) => void
  reject: (error: Error) => void
}

export class CheckpointRefusedError extends Error {
  override name = 'CheckpointRefusedError'
}

export class CheckpointWaiters {
  readonly #byRequest = new Map<string, Waiter>()

  get size(): number {
    return this.#byRequest.size
  }

  /** Waits for the next checkpoint of `jobId` taken here; the caller then asks the core with `requestId`. */
  wait(requestId: string, jobId: JobId, onProgress: (frame: ProgressFrame) => void, signal: AbortSignal): Promise<CheckpointMade> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { requestId, jobId, onProgress, resolve, reject }
      const onAbort = (): void => this.#end(waiter, () => reject(signal.reason as Error))
      signal.addEventListener('abort', onAbort, { once: true })
      waiter.resolve = (made) => { signal.removeEventListener('abort', onAbort); resolve(made) }
      waiter.reject = (error) => { signal.removeEventListener('abort', onAbort); reject(error) }
      this.#byRequest.set(requestId, waiter)
    })
  }

  /** The core's answer to a request: a refusal ends its wait. */
  answered(requestId: string, refused: string | null): void {
    const waiter = this.#byRequest.get(requestId)
    if (waiter !== undefined && refused !== null) this.#end(waiter, () => waiter.reject(new CheckpointRefusedError(refused)))
  }

  progress(jobId: JobId, frame: ProgressFrame): void {
    for (const waiter of this.#byRequest.values()) if (waiter.jobId === jobId) waiter.onProgress(frame)
  }

  made(jobId: JobId, made: CheckpointMade): void {
    for (const waiter of [...this.#byRequest.values()]) if (waiter.jobId === jobId) this.#end(waiter, () => waiter.resolve(made))
  }

  failed(jobId: JobId, reason: string): void {
    for (const waiter of [...this.#byRequest.values()]) if (waiter.jobId === jobId) this.#end(waiter, () => waiter.reject(new Error(`the checkpoint of ${jobId} failed: ${reason}`)))
  }

  /** The daemon stops: every wait ends. */
  close(reason: string): void {
    for (const waiter of [...this.#byRequest.values()]) this.#end(waiter, () => waiter.reject(new Error(reason)))
  }

  #end(waiter: Waiter, settle: () => void): void {
    if (this.#byRequest.get(waiter.requestId) !== waiter) return
    this.#byRequest.delete(waiter.requestId)
    settle()
  }
}
