// A runtime's side of the lease watchdog (lease-watchdog.ts): the deadline the daemon sets and each
// job's kill targets, handed to the watchdog in a spawner process (outside the daemon's event loop,
// so a paused or dead daemon's jobs still end at the deadline) and kept by a watchdog here too, the
// second line. The process runtime attaches its own spawner; a runtime that forks nothing (Docker)
// has the guard start a spawner for the watchdog alone, once a lease is armed. Without any spawner
// only the watchdog here is left, and a warning says what that costs.
import { probeParentDeathSignal } from './isolation.ts'
import { LeaseWatchdog, monotonicNowMs, type GuardedProcess, type LeaseLapse } from './lease-watchdog.ts'
import type { RuntimeLogger } from './runtime.ts'
import { Spawner } from './spawner.ts'

export const leaseGuardLimits = {
  /** A watchdog spawner of our own is (re)started at most this often. */
  spawnerRestartIntervalMs: 1_000,
} as const

export interface LeaseGuardInit {
  runtime: string
  /** 'attached': the runtime hands over its spawner (attach); 'own': the guard starts one for the watchdog. */
  spawner: 'attached' | 'own'
}

export interface LeaseGuardComponents {
  logger: RuntimeLogger
  /** A watchdog (the spawner's, or this process's) killed these keys' targets. */
  onLapse(lapse: LeaseLapse & { where: 'spawner' | 'daemon' }): void
}

export class LeaseGuard {
  readonly #init: LeaseGuardInit
  readonly #logger: RuntimeLogger
  readonly #onLapse: LeaseGuardComponents['onLapse']
  readonly #local: LeaseWatchdog
  #spawner: Spawner | null = null
  /** Whether a spawner carries the watchdog: unknown until one answered or could not. */
  #outside: 'unknown' | 'spawner' | 'none' = 'unknown'
  #warned = false
  #ownStarting: Promise<void> | null = null
  #ownLastStartMs = -Infinity
  #ownRetry: NodeJS.Timeout | undefined
  #closed = false

  constructor(init: LeaseGuardInit, components: LeaseGuardComponents) {
    this.#init = init
    this.#logger = components.logger
    this.#onLapse = components.onLapse
    this.#local = new LeaseWatchdog({ onLapse: (lapse) => this.#onLapse({ ...lapse, where: 'daemon' }), unrefTimer: true })
  }

  /** Set at least once (before that, jobs run as if there were no leases). */
  get armed(): boolean {
    return this.#local.armed
  }

  /** Armed, and the lease is gone: nothing may start. */
  lapsed(): boolean {
    return this.#local.lapsed()
  }

  get deadlineMs(): number | null | undefined {
    return this.#local.deadlineMs
  }

  setDeadline(deadlineMs: number | null): void {
    if (this.#closed) return
    this.#local.setDeadline(deadlineMs)
    this.#live()?.setLease(deadlineMs)
    this.#startOwn()
    this.#warnIfInside()
  }

  /** Guards a job's processes under its key (replacing what it had); a lapsed lease kills them at once. */
  guard(key: string, processes: GuardedProcess[]): void {
    const answer = this.#local.guard(key, processes)
    if (!answer.ok) this.#logger.error('lease-guard-refused', { runtime: this.#init.runtime, key, reason: answer.reason })
    this.#live()?.guard(key, processes)
  }

  unguard(key: string): void {
    this.#local.unguard(key)
    this.#live()?.unguard(key)
  }

  /** The spawner now carrying the watchdog (a new one after the last died), told the lease and every target; null: there is none. */
  attach(spawner: Spawner | null): void {
    this.#spawner = spawner
    this.#outside = spawner === null ? 'none' : 'spawner'
    if (spawner !== null) {
      const deadlineMs = this.#local.deadlineMs
      if (deadlineMs !== undefined) spawner.setLease(deadlineMs)
      for (const [key, processes] of this.#local.targets()) spawner.guard(key, processes)
    }
    this.#warnIfInside()
  }

  /** Settles once a watchdog spawner of our own being started answered (or could not): targets guarded after it reach it at once. */
  async outsideReady(): Promise<void> {
    await this.#ownStarting
  }

  /** The spawner's watchdog killed these keys' targets (its answer, passed on by its Spawner). */
  fromSpawner(lapse: LeaseLapse): void {
    // What the spawner killed is not this side's to kill again (by then its PIDs may name others).
    for (const key of lapse.killed) this.#local.unguard(key)
    this.#onLapse({ ...lapse, where: 'spawner' })
  }

  /** Stops the watchdog here and closes a spawner of our own (one still guarding jobs stays until the deadline on its own). */
  async close(): Promise<void> {
    this.#closed = true
    this.#local.close()
    clearTimeout(this.#ownRetry)
    if (this.#init.spawner === 'own') await this.#spawner?.close()
  }

  #live(): Spawner | null {
    return this.#spawner !== null && !this.#spawner.gone ? this.#spawner : null
  }

  /** Starts (or restarts, after it died) the watchdog spawner of our own, at most once per interval. */
  #startOwn(): void {
    if (this.#init.spawner !== 'own' || this.#closed || !this.#local.armed || this.#ownStarting !== null || this.#live() !== null || this.#ownRetry !== undefined) return
    const waitMs = this.#ownLastStartMs + leaseGuardLimits.spawnerRestartIntervalMs - monotonicNowMs()
    if (waitMs > 0) {
      this.#ownRetry = setTimeout(() => {
        this.#ownRetry = undefined
        this.#startOwn()
      }, waitMs)
      this.#ownRetry.unref()
      return
    }
    this.#ownLastStartMs = monotonicNowMs()
    this.#ownStarting = this.#startOwnSpawner()
      .catch((error) => {
        this.#logger.warn('lease-watchdog-problem', { runtime: this.#init.runtime, reason: `the watchdog spawner could not start: ${(error as Error).message}` })
        this.attach(null)
      })
      .finally(() => {
        this.#ownStarting = null
      })
  }

  async #startOwnSpawner(): Promise<void> {
    const parentDeath = await probeParentDeathSignal()
    const spawner: Spawner = Spawner.start({
      ...(parentDeath.available ? { setpriv: parentDeath.setpriv } : {}),
      onProblem: (reason) => {
        this.#logger.warn('lease-watchdog-problem', { runtime: this.#init.runtime, reason })
        // It died: another one, while a lease is watched (events come after start returned: `spawner` is set).
        if (spawner.gone && this.#spawner === spawner) this.#startOwn()
      },
      onLeaseLapsed: (lapse) => this.fromSpawner(lapse),
    })
    const ready = await spawner.ready()
    if (this.#closed) return void (await spawner.close())
    if (ready) return this.attach(spawner)
    await spawner.close()
    this.attach(null)
  }

  #warnIfInside(): void {
    if (this.#warned || this.#outside !== 'none' || !this.#local.armed) return
    this.#warned = true
    this.#logger.warn('lease-watchdog-in-daemon', {
      runtime: this.#init.runtime,
      reason: "no spawner process: the lease watchdog runs in the daemon only, so a paused daemon's jobs run on past its lease",
    })
  }
}
