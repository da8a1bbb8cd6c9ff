// The timed phases of `fabric bench mesh`, each a way of offering submissions to the mesh and
// timing each one from the submit call to its committed assignment (as the leader's `assignments`
// stream reports it): one at a time on the idle mesh, paced (an open loop at a fixed rate, what a
// latency goal is stated against), and saturated (`concurrency` in flight, what jobs/s is).
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { clientFrames } from './client-connection.ts'
import type { Daemon } from './daemon-process.ts'

/** When jobs were committed, and a wait for some to be. */
export interface CommitLog {
  committedAt(jobId: string): number | undefined
  allCommitted(jobIds: Iterable<string>, timeoutMs: number, what: string): Promise<void>
}

/** When each job's assignment was reported committed, by the leaders watched. */
export class CommitWatch implements CommitLog {
  readonly #host: Libp2p
  readonly #progress: (line: string) => void
  readonly #committedAt = new Map<string, number>()
  readonly #waiters = new Set<() => void>()

  constructor(host: Libp2p, progress: (line: string) => void) {
    this.#host = host
    this.#progress = progress
  }

  readonly #watched = new Set<Daemon>()

  committedAt(jobId: string): number | undefined { return this.#committedAt.get(jobId) }

  /** Daemons whose streams were followed as leaders (more than one: the leader changed). */
  get leadersFollowed(): number { return this.#watched.size }

  /**
   * Follows the stream of whichever daemon leads, checked every `everyMs` until `signal` aborts. A node
   * that no longer leads learns commits from the document's commit markers, up to a second late, so
   * a new leader's stream is added as soon as it reports ready (the first report of a job wins).
   */
  followLeaders(live: () => readonly Daemon[], signal: AbortSignal, everyMs = 100): void {
    const check = (): void => {
      for (const daemon of live()) if (daemon.status?.role === 'leader' && daemon.status.readyLeader && !this.#watched.has(daemon)) {
        this.#watched.add(daemon)
        this.watch(daemon, signal)
      }
    }
    check()
    const timer = setInterval(check, everyMs)
    signal.addEventListener('abort', () => clearInterval(timer), { once: true })
  }

  /** Follows `daemon`'s stream of committed assignments until `signal` aborts. */
  watch(daemon: Daemon, signal: AbortSignal): void {
    void (async () => {
      for await (const frame of clientFrames(this.#host, multiaddr(daemon.address), { kind: 'assignments' }, { signal })) {
        if (frame.type === 'error') throw new Error(`${daemon.name} refused the assignments stream: ${frame.message}`)
        if (frame.type !== 'assignment' || this.#committedAt.has(frame.jobId)) continue
        this.#committedAt.set(frame.jobId, performance.now())
        for (const wake of [...this.#waiters]) wake()
      }
    })().catch((error: unknown) => {
      if (!signal.aborted) this.#progress(`assignments stream of ${daemon.name} ended: ${(error as Error).message}`)
    })
  }

  /** Resolves once every job is committed, re-checked whenever a commit arrives (and every 50 ms); rejects after `timeoutMs`. */
  async allCommitted(jobIds: Iterable<string>, timeoutMs: number, what: string): Promise<void> {
    const ids = [...jobIds]
    const deadline = performance.now() + timeoutMs
    while (!ids.every((jobId) => this.#committedAt.has(jobId))) {
      if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          this.#waiters.delete(done)
          resolve()
        }
        const timer = setTimeout(done, 50)
        this.#waiters.add(done)
      })
    }
  }
}

/** How a phase submits, and how long it waits for the last commit. */
export interface PhaseContext {
  /** Submits job `index` (through the non-leader nodes in turn) and resolves with its id once acknowledged. */
  submit(index: number): Promise<string>
  commits: CommitLog
  drainTimeoutMs: number
}

export interface PhaseTimes {
  /** Submit -> committed, per job. */
  latenciesMs: number[]
  /** Submit -> acknowledged (the submit call's answer), per job. */
  acksMs: number[]
  /** First submission to last commit. */
  elapsedMs: number
}

async function submit(context: PhaseContext, index: number): Promise<{ jobId: string; submittedAt: number; ackMs: number }> {
  const submittedAt = performance.now()
  const jobId = await context.submit(index)
  return { jobId, submittedAt, ackMs: performance.now() - submittedAt }
}

async function timed(context: PhaseContext, firstSubmit: number, submitted: readonly { jobId: string; submittedAt: number; ackMs: number }[], what: string): Promise<PhaseTimes> {
  await context.commits.allCommitted(submitted.map((one) => one.jobId), context.drainTimeoutMs, what)
  const committed = submitted.map((one) => context.commits.committedAt(one.jobId)!)
  return {
    latenciesMs: submitted.map((one, index) => committed[index]! - one.submittedAt),
    acksMs: submitted.map((one) => one.ackMs),
    elapsedMs: committed.length === 0 ? 0 : Math.max(...committed) - firstSubmit,
  }
}

/** `samples` submissions one at a time, each after a pause of `intervalMs` that lets the last one's run, exit and reports settle. */
export async function timeOneAtATime(context: PhaseContext, firstIndex: number, samples: number, intervalMs: number): Promise<PhaseTimes> {
  const submitted = []
  const firstSubmit = performance.now()
  for (let sample = 0; sample < samples; sample++) {
    await sleep(intervalMs)
    const one = await submit(context, firstIndex + sample)
    await context.commits.allCommitted([one.jobId], context.drainTimeoutMs, `${one.jobId} to be committed`)
    submitted.push(one)
  }
  return timed(context, firstSubmit, submitted, 'the one-at-a-time jobs to be committed')
}

/**
 * `jobs` submissions at `ratePerSec`, each sent on its schedule whether or not the earlier ones were
 * answered (an open loop, as independent users submit): the latency at that offered load, queueing
 * included once the mesh falls behind.
 */
export async function timePaced(context: PhaseContext, firstIndex: number, jobs: number, ratePerSec: number): Promise<PhaseTimes> {
  const firstSubmit = performance.now()
  const calls: Promise<{ jobId: string; submittedAt: number; ackMs: number }>[] = []
  for (let index = 0; index < jobs; index++) {
    await sleep(firstSubmit + (index * 1000) / ratePerSec - performance.now())
    calls.push(submit(context, firstIndex + index))
  }
  return timed(context, firstSubmit, await Promise.all(calls), 'every paced job to be committed')
}

/** `jobs` submissions with `concurrency` in flight: each worker submits its next as soon as the last is acknowledged. */
export async function timeSaturated(context: PhaseContext, firstIndex: number, jobs: number, concurrency: number): Promise<PhaseTimes> {
  const firstSubmit = performance.now()
  const submitted: { jobId: string; submittedAt: number; ackMs: number }[] = []
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < jobs) submitted.push(await submit(context, firstIndex + next++))
    }),
  )
  return timed(context, firstSubmit, submitted, 'every job to be committed')
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}
