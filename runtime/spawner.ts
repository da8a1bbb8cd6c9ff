// Forks jobs through a small helper process instead of the daemon. fork() copies the parent's page
// tables, so its cost grows with the parent's memory: on these machines a 300 MiB daemon spent
// 55 ms of blocked event loop in each spawn (a bare Node process: about 1 ms). A daemon starting jobs
// under load stalled its consensus that long per job. The spawner (spawner-main.ts) is started at
// the first launch (one fork of the daemon) and forks everything after; its children get the
// parent-death signal from their own launch chain, and the spawner dies with the daemon (its stdin
// closes; and setpriv --pdeathsig where available).
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { parseSpawnerAnswer, type LaunchRequest, type SpawnerRequest } from './spawner-wire.ts'

const spawnerEntry = fileURLToPath(new URL('./spawner-main.ts', import.meta.url))

export const spawnerLimits = {
  /** The spawner says it is ready within this, or the runtime forks by itself. */
  readyTimeoutMs: 10_000,
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

  private constructor(child: ChildProcess, onProblem: (reason: string) => void) {
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
      const launched = this.#pending.get(answer.id)
      if (launched === undefined) return
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
      onProblem(this.#gone)
    })
    child.once('error', (error) => onProblem(`the spawner could not start: ${error.message}`))
    // A write racing the spawner's death fails with EPIPE; its 'exit' says what happened to each launch.
    child.stdin!.on('error', (error) => onProblem(`writing to the spawner failed: ${error.message}`))
  }

  /** Starts the spawner (through setpriv --pdeathsig KILL when given, so it dies with the daemon). */
  static start(options: { setpriv?: string; onProblem(reason: string): void }): Spawner {
    const node = process.execPath
    const [file, args] = options.setpriv === undefined ? [node, [spawnerEntry]] : [options.setpriv, ['--pdeathsig', 'KILL', node, spawnerEntry]]
    // A small young generation, and Node's compile cache from the start (the same folder the CLI
    // uses, cli/main.ts): with the stripped module cached no TypeScript stripper loads. The point is a
    // small process to fork from: 73 -> 50 MiB resident here.
    args.splice(args.indexOf(spawnerEntry), 0, '--max-semi-space-size=1')
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'node-compile-cache') } })
    return new Spawner(child, options.onProblem)
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
    const message: SpawnerRequest = { id, ...request }
    this.#child.stdin!.write(`${JSON.stringify(message)}\n`)
    return launched
  }

  /** Closes its stdin: it exits, and with it whatever it still had running. */
  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()))
    this.#child.stdin!.end()
    await exited
  }
}
