// Requests that wait on the daemon for the core's answer. Submissions, cancels, migrations, drains and
// admissions are answered once the core says they are durable on a majority of voters
// (`submission-durable`) or refuses them (`submission-refused`), or after submitAckTimeoutMs; a
// checkpoint of a replica run here by the core's `checkpoint-answer`, then by the checkpoint itself
// (checkpoint-waiters.ts). Bounded: past the limits, new requests are refused at once.
import { randomUUID } from 'node:crypto'
import type { JobId, PeerEvent, PeerInput } from '../consensus/index.ts'
import { CheckpointWaiters, maxCheckpointWaiters, type CheckpointMade } from './checkpoint-waiters.ts'
import type { SubmitOutcome } from './client-service.ts'
import type { ProgressFrame } from './client-wire.ts'
import type { PendingInput } from './core-driver.ts'

/** Client submissions waiting for the core's answer at once. */
export const maxWaitingSubmissions = 1_024
/** A submission not durable on a majority of voters by then is answered 'not-acknowledged' (the core keeps retrying it). */
export const submitAckTimeoutMs = 30_000

export interface CoreRequestsInit {
  /** Requests are taken only while the daemon runs. */
  running(): boolean
  /** Queues an input for the core; false when it cannot take it. */
  enqueue(make: PendingInput): boolean
}

export class CoreRequests {
  readonly #init: CoreRequestsInit
  readonly #waiting = new Map<string, { timer: NodeJS.Timeout; resolve: (outcome: SubmitOutcome) => void }>()
  /** Clients waiting for a checkpoint of a replica this node runs. */
  readonly checkpoints = new CheckpointWaiters()

  constructor(init: CoreRequestsInit) {
    this.#init = init
  }

  /** A request the core acknowledges like a submission: answered by its `submission-durable` or `submission-refused`. */
  acknowledged(jobId: JobId, what: string, input: (nowMs: number, requestId: string) => PeerInput): Promise<SubmitOutcome> {
    const reason = `${what} was not durable on a majority of voters within ${submitAckTimeoutMs} ms; this node keeps offering it (check with \`fabric job ${jobId}\`)`
    return this.#wait('submissions', { ok: false, code: 'not-acknowledged', jobId, reason }, input)
  }

  /** Records a grant of a role to a peer (the admin key signed it) through the core; answered like a submission. */
  admit(peerId: string, grant: string): Promise<SubmitOutcome> {
    const reason = `the admission record of ${peerId} was not durable on a majority of voters within ${submitAckTimeoutMs} ms; this node keeps offering it`
    return this.#wait('requests', { ok: false, code: 'not-acknowledged', reason }, (nowMs, requestId) => ({ kind: 'admit', nowMs, requestId, peerId, grant }))
  }

  /** Checkpoints a replica this node runs, now (it keeps running); progress as it goes, the snapshot once made. */
  checkpointNow(jobId: JobId, onProgress: (frame: ProgressFrame) => void, signal: AbortSignal): Promise<CheckpointMade> {
    if (!this.#init.running()) return Promise.reject(new Error('the daemon is not running'))
    if (this.checkpoints.size >= maxCheckpointWaiters) return Promise.reject(new Error(`${maxCheckpointWaiters} checkpoint requests are waiting on this node already`))
    const requestId = randomUUID()
    const made = this.checkpoints.wait(requestId, jobId, onProgress, signal)
    if (!this.#init.enqueue((nowMs) => ({ kind: 'checkpoint-now', nowMs, requestId, jobId }))) this.checkpoints.answered(requestId, 'the daemon\'s inbox is full; try again')
    return made
  }

  /** An event of the core: the answer to a request waiting here, or not. */
  heard(event: PeerEvent): void {
    if (event.kind === 'submission-durable') this.#answer(event.requestId, { ok: true, jobId: event.jobId })
    else if (event.kind === 'submission-refused') this.#answer(event.requestId, { ok: false, code: 'refused', reason: event.reason })
    else if (event.kind === 'checkpoint-answer') this.checkpoints.answered(event.requestId, event.refused)
  }

  /** The daemon stops: every request still waiting is answered. */
  close(): void {
    for (const requestId of [...this.#waiting.keys()]) this.#answer(requestId, { ok: false, code: 'unavailable', reason: 'the daemon is stopping; the job may still have been accepted' })
    this.checkpoints.close('the daemon is stopping')
  }

  /** Queues the request's input and waits for its answer; `waiting` names what the busy refusal counts. */
  #wait(waiting: 'submissions' | 'requests', timedOut: SubmitOutcome, input: (nowMs: number, requestId: string) => PeerInput): Promise<SubmitOutcome> {
    if (!this.#init.running()) return Promise.resolve({ ok: false, code: 'unavailable', reason: 'the daemon is not running' })
    if (this.#waiting.size >= maxWaitingSubmissions) return Promise.resolve({ ok: false, code: 'busy', reason: `${maxWaitingSubmissions} ${waiting} are waiting for the core already` })
    const requestId = randomUUID()
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(requestId)
        resolve(timedOut)
      }, submitAckTimeoutMs)
      this.#waiting.set(requestId, { timer, resolve })
      if (!this.#init.enqueue((nowMs) => input(nowMs, requestId))) this.#answer(requestId, { ok: false, code: 'busy', reason: 'the daemon\'s inbox is full; try again' })
    })
  }

  #answer(requestId: string, outcome: SubmitOutcome): void {
    const waiter = this.#waiting.get(requestId)
    if (waiter === undefined) return
    this.#waiting.delete(requestId)
    clearTimeout(waiter.timer)
    waiter.resolve(outcome)
  }
}
