// Forks jobs through a small helper process instead of the daemon. fork() copies the parent's page
// tables, so its cost grows with the parent's memory: on these machines a 300 MiB daemon spent
// 55 ms of blocked event loop in each spawn (a bare Node process: about 1 ms). A daemon starting jobs
// under load stalled its consensus that long per job. The spawner (spawner-main.ts) is started at
// the first launch (one fork of the daemon) and forks everything after; its children get the
// parent-death signal from their own launch chain, and the spawner leaves with the daemon (its stdin
// closes; and setpriv --pdeathsig TERM where available), unless the lease watchdog it runs for the
// daemon (lease-watchdog.ts) still guards jobs: then it kills them at the lease's deadline first.
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import type { GuardedProcess, LeaseLapse } from './lease-watchdog.ts'
import { parseSpawnerAnswer, type LaunchRequest, type SpawnerRequest } from './spawner-wire.ts'

const spawnerEntry = fileURLToPath(new URL('./spawner-main.ts', import.meta.url))

export const spawnerLimits = {
  /** The spawner says it is ready within this, or the runtime forks by itself. */
  readyTimeoutMs: 10_000,
  /** close() waits this long for it to exit (one still guarding jobs stays until the lease's deadline, on its own). */
  closeWaitMs: 2_000,
} as const

/** What the runtime needs of a launched process: Node's ChildProcess has it, and so does a SpawnedProcess. */
export interface LaunchedProcess {
  readonly pid?: number | undefined
  readonly exitCode: number | null
  readonly signalCode: NodeJS.Signals | null
  once(event: 'spawn', listener: () => void): this
  once(event: 'error', listener: (error: Error) => void): this
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this
}

export type { LaunchRequest }

export interface SpawnerOptions {
  /** setpriv, to give the spawner a parent-death signal (TERM: it leaves as it would on stdin's end). */
  setpriv?: string
  onProblem(reason: string): void
  /** The spawner's watchdog killed these keys' targets: the lease lapsed (or was withdrawn). */
  onLeaseLapsed?(lapse: LeaseLapse): void
}

/** A process the spawner forked, seen from the daemon (events as a ChildProcess has them). */
class SpawnedProcess extends EventEmitter implements LaunchedProcess {
  pid: number | undefined = undefined
  exitCode: number | null = null
  signalCode: NodeJS.Signals | null = null
}

export class Spawner {
  readonly #child: ChildProcess
  readonly #pending = new Map<number, SpawnedProcess>()
  readonly #ready: Promise<boolean>
  #nextId = 1
  #gone: string | null = null
  /** close() was called: a clean exit is then no problem to report. */
  #closing = false

  private constructor(child: ChildProcess, options: SpawnerOptions) {
    const { onProblem } = options
    this.#child = child
    let markReady: (ok: boolean) => void = () => {}
    this.#ready = new Promise((resolve) => {
      markReady = resolve
    })
    const timer = setTimeout(() => markReady(false), spawnerLimits.readyTimeoutMs)
    timer.unref()
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const answer = parseSpawnerAnswer(line)
      if (answer instanceof Error) return onProblem(`unreadable answer from the spawner: ${answer.message}`)
      if (answer.type === 'ready') {
        clearTimeout(timer)
        return markReady(true)
      }
      if (answer.type === 'lease-lapsed') return options.onLeaseLapsed?.({ deadlineMs: answer.deadlineMs, killed: answer.killed })
      const launched = this.#pending.get(answer.id)
      if (launched === undefined) {
        // Guard refusals (no room): a launch's own errors and exits come to its pending entry.
        if (answer.type === 'error') onProblem(`the spawner refused: ${answer.message}`)
        return
      }
      if (answer.type === 'spawned') {
        launched.pid = answer.pid
        launched.emit('spawn')
      } else if (answer.type === 'error') {
        this.#pending.delete(answer.id)
        launched.emit('error', new Error(answer.message))
      } else {
        this.#pending.delete(answer.id)
        launched.exitCode = answer.code
        launched.signalCode = answer.signal
        launched.emit('exit', answer.code, answer.signal)
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      markReady(false)
      this.#gone = `the spawner exited (${signal ?? `code ${code}`})`
      // Its children died with it (parent-death signal): say so to whoever waits on them.
      for (const [id, launched] of this.#pending) {
        this.#pending.delete(id)
        if (launched.pid === undefined) launched.emit('error', new Error(this.#gone))
        else launched.emit('exit', null, 'SIGKILL')
      }
      // Asked to close and gone cleanly: nothing went wrong (a daemon's SIGTERM stop).
      if (!(this.#closing && code === 0)) onProblem(this.#gone)
    })
    child.once('error', (error) => onProblem(`the spawner could not start: ${error.message}`))
    // A write racing the spawner's death fails with EPIPE; its 'exit' says what happened to each launch.
    child.stdin!.on('error', (error) => onProblem(`writing to the spawner failed: ${error.message}`))
  }

  /**
   * Starts the spawner (through setpriv --pdeathsig TERM when given, so it hears of the daemon's death
   * even if something else held its stdin open; TERM, not KILL: its watchdog may have to stay).
   */
  static start(options: SpawnerOptions): Spawner {
    const node = process.execPath
    const [file, args] = options.setpriv === undefined ? [node, [spawnerEntry]] : [options.setpriv, ['--pdeathsig', 'TERM', node, spawnerEntry]]
    // A small young generation, and Node's compile cache from the start (the same folder the CLI
    // uses, cli/main.ts): with the stripped module cached no TypeScript stripper loads. The point is a
    // small process to fork from: 73 -> 50 MiB resident here.
    args.splice(args.indexOf(spawnerEntry), 0, '--max-semi-space-size=1')
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'node-compile-cache') } })
    return new Spawner(child, options)
  }

  /** The spawner exited: it launches nothing more (start another). */
  get gone(): boolean { return this.#gone !== null }

  /** True once the spawner answers; false if it never did (the caller forks by itself then). */
  ready(): Promise<boolean> {
    return this.#ready
  }

  launch(request: LaunchRequest): LaunchedProcess {
    const launched = new SpawnedProcess()
    if (this.#gone !== null) {
      const reason = this.#gone
      queueMicrotask(() => launched.emit('error', new Error(reason)))
      return launched
    }
    const id = this.#nextId++
    this.#pending.set(id, launched)
    this.#send({ id, type: 'launch', ...request })
    return launched
  }

  /** The node's lease deadline for the spawner's watchdog (CLOCK_MONOTONIC ms); null: no lease. */
  setLease(deadlineMs: number | null): void {
    this.#send({ id: this.#nextId++, type: 'lease', deadlineMs })
  }

  /** Guards a job's processes under `key` (replacing what it had); a refusal comes to onProblem. */
  guard(key: string, processes: GuardedProcess[]): void {
    this.#send({ id: this.#nextId++, type: 'guard', key, processes })
  }

  unguard(key: string): void {
    this.#send({ id: this.#nextId++, type: 'unguard', key })
  }

  #send(message: SpawnerRequest): void {
    if (this.#gone !== null) return
    this.#child.stdin!.write(`${JSON.stringify(message)}\n`)
  }

  /**
   * Closes its stdin: it exits, and with it whatever it still had running. One whose watchdog still
   * guards jobs under a lease stays until the deadline: we wait for it only so long (closeWaitMs).
   */
  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    this.#closing = true
    let timer: NodeJS.Timeout | undefined
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()))
    this.#child.stdin!.end()
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, spawnerLimits.closeWaitMs)))])
    clearTimeout(timer)
  }
}
