// The lease watchdog: holds the node's lease deadline and the kill targets of its jobs, and SIGKILLs
// every target once CLOCK_MONOTONIC passes the deadline, so that no job of a node that lost its lease
// runs on while the mesh places it elsewhere. It runs in the spawner process (spawner-main.ts), whose
// event loop a paused or dead daemon does not stop, and in the daemon too (lease-guard.ts).
import { readFileSync } from 'node:fs'
import { procStatFields } from './isolation.ts'

export const leaseWatchdogLimits = {
  /** Jobs guarded at once (each runtime's maximum of running jobs is far below). */
  maxGuardedTargets: 1024,
  /** Processes per job: its launcher's process group and its namespace's PID 1 at most, with room. */
  maxProcessesPerTarget: 4,
  /** A target's key (the job id) in characters. */
  maxKeyLength: 256,
  /** Node's timers take at most 2^31 - 1 ms; a farther deadline re-arms when this much has passed. */
  maxTimerDelayMs: 2 ** 31 - 1,
} as const

/** Milliseconds of CLOCK_MONOTONIC: the same clock in every process of this machine (Node's hrtime reads it on Linux). */
export function monotonicNowMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n)
}

/**
 * One process a lapse kills, known by PID and start time (/proc/PID/stat field 22, clock ticks since
 * boot) so that a reused PID is spared. `group`: kill its whole process group (the PID is the leader's).
 */
export interface GuardedProcess {
  pid: number
  startTicks: number
  group: boolean
}

export interface LeaseLapse {
  /** The deadline that passed; null: the lease was withdrawn. */
  deadlineMs: number | null
  /** Keys of the targets that were signalled (those already gone or whose PID was reused are not). */
  killed: string[]
}

export type GuardAnswer = { ok: true } | { ok: false; reason: string }

export interface LeaseWatchdogComponents {
  onLapse(lapse: LeaseLapse): void
  nowMs?: () => number
  /** SIGKILLs one target; true when a signal was delivered. killGuardedProcess by default. */
  kill?: (process: GuardedProcess) => boolean
  /** Unref the timer (in the daemon: the watchdog must not keep it alive). */
  unrefTimer?: boolean
}

export class LeaseWatchdog {
  readonly #components: LeaseWatchdogComponents
  readonly #nowMs: () => number
  readonly #kill: (process: GuardedProcess) => boolean
  readonly #targets = new Map<string, GuardedProcess[]>()
  /** undefined: disarmed (never told of a lease); null: no lease; else the deadline. */
  #deadlineMs: number | null | undefined = undefined
  #timer: NodeJS.Timeout | undefined

  constructor(components: LeaseWatchdogComponents) {
    this.#components = components
    this.#nowMs = components.nowMs ?? monotonicNowMs
    this.#kill = components.kill ?? killGuardedProcess
  }

  get armed(): boolean {
    return this.#deadlineMs !== undefined
  }

  get deadlineMs(): number | null | undefined {
    return this.#deadlineMs
  }

  get guardedCount(): number {
    return this.#targets.size
  }

  /** The targets, for handing them to another watchdog (a new spawner). */
  targets(): IterableIterator<[string, GuardedProcess[]]> {
    return this.#targets.entries()
  }

  /** True when armed and the lease is gone: nothing may run. */
  lapsed(): boolean {
    return this.#deadlineMs === null || (this.#deadlineMs !== undefined && this.#nowMs() >= this.#deadlineMs)
  }

  setDeadline(deadlineMs: number | null): void {
    if (deadlineMs !== null && !Number.isFinite(deadlineMs)) throw new RangeError(`a lease deadline must be a finite number of milliseconds or null, not ${deadlineMs}`)
    this.#deadlineMs = deadlineMs
    this.#check()
  }

  /** Guards `key` (replacing what it had). A lapsed lease kills it at once. */
  guard(key: string, processes: readonly GuardedProcess[]): GuardAnswer {
    if (key.length === 0 || key.length > leaseWatchdogLimits.maxKeyLength) return { ok: false, reason: `a target key must have 1 to ${leaseWatchdogLimits.maxKeyLength} characters` }
    if (processes.length > leaseWatchdogLimits.maxProcessesPerTarget) return { ok: false, reason: `target ${key} has ${processes.length} processes, at most ${leaseWatchdogLimits.maxProcessesPerTarget}` }
    if (!this.#targets.has(key) && this.#targets.size >= leaseWatchdogLimits.maxGuardedTargets) {
      return { ok: false, reason: `${this.#targets.size} targets are guarded already, the maximum is ${leaseWatchdogLimits.maxGuardedTargets}` }
    }
    this.#targets.set(key, [...processes])
    if (this.lapsed()) this.#lapse()
    return { ok: true }
  }

  unguard(key: string): void {
    this.#targets.delete(key)
  }

  close(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** Kills now when lapsed, else arms the timer for the deadline. Timers can fire early: the clock decides. */
  #check(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#deadlineMs === undefined) return
    if (this.lapsed()) {
      this.#lapse()
      return
    }
    const delayMs = Math.min(Math.max(1, this.#deadlineMs! - this.#nowMs()), leaseWatchdogLimits.maxTimerDelayMs)
    this.#timer = setTimeout(() => this.#check(), delayMs)
    if (this.#components.unrefTimer === true) this.#timer.unref()
  }

  #lapse(): void {
    const killed: string[] = []
    for (const [key, processes] of this.#targets) {
      let signalled = false
      for (const process of processes) if (this.#kill(process)) signalled = true
      if (signalled) killed.push(key)
    }
    // What was guarded is dead or was gone: a new lease starts with what is started under it.
    this.#targets.clear()
    this.#components.onLapse({ deadlineMs: this.#deadlineMs ?? null, killed })
  }
}

/**
 * SIGKILL to a guarded process, or to its group, unless its PID now names another process (another
 * start time). A group whose leader is gone is still killed: the kernel hands out no PID that a living
 * group carries, so its members are the job's. True when a signal was delivered.
 */
export function killGuardedProcess(target: GuardedProcess): boolean {
  const stat = readStat(target.pid)
  if (stat !== undefined && stat.startTicks !== target.startTicks) return false
  if (!target.group && (stat === undefined || stat.dead)) return false
  try {
    process.kill(target.group ? -target.pid : target.pid, 'SIGKILL')
    return true
  } catch {
    return false // ESRCH: nothing of it is left
  }
}

/** The process's start time (/proc/PID/stat field 22), read now; undefined when it is gone. */
export function startTicksOf(pid: number): number | undefined {
  const stat = readStat(pid)
  return stat === undefined || !Number.isFinite(stat.startTicks) ? undefined : stat.startTicks
}

function readStat(pid: number): { startTicks: number; dead: boolean } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = procStatFields(stat) // index 0: state (field 3); 19: start time (field 22)
    return { startTicks: Number(fields[19]), dead: fields[0] === 'Z' || fields[0] === 'X' }
  } catch {
    return undefined
  }
}
