// Test harness for integration tests with real daemons: each Daemon is `fabric node start` in its
// own process, observed through the JSON lines it prints on stdout (ready, status) and the tail of
// its stderr log; runCli runs one `fabric` command as a process. Waits are bounded and event-driven.
import { spawn, type ChildProcess } from 'node:child_process'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'

export const repositoryRoot = resolve(import.meta.dirname, '../..')
export const nodeBinary = join(repositoryRoot, 'node_modules/.bin/node')
export const cliEntry = join(repositoryRoot, 'cli/main.ts')

/** Log lines each Daemon keeps for `logged` (a test's whole run stays far below this). */
export const maxKeptLogLines = 50_000

export interface StatusLine { event: 'status'; nodeId: string; role: string; term: number; leaderId: string | null; readyLeader: boolean }
export interface ReadyLine { event: 'ready'; peerId: string; listen: string[]; term: number }

export class Daemon {
  readonly child: ChildProcess
  readonly name: string
  ready: ReadyLine | null = null
  status: StatusLine | null = null
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null
  readonly stderrTail: string[] = []
  /** Every stderr line so far (bounded by maxKeptLogLines), for `logged`. */
  readonly #logLines: string[] = []
  readonly #waiters = new Set<() => void>()

  constructor(name: string, args: string[]) {
    this.name = name
    this.child = spawn(nodeBinary, [cliEntry, 'node', 'start', ...args], { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const value = JSON.parse(line) as ReadyLine | StatusLine
      if (value.event === 'ready') this.ready = value
      if (value.event === 'status') this.status = value
      this.#notify()
    })
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.stderrTail.push(line)
      if (this.stderrTail.length > 40) this.stderrTail.shift()
      if (this.#logLines.length < maxKeptLogLines) this.#logLines.push(line)
      this.#notify()
    })
    this.child.on('exit', (code, signal) => {
      this.exit = { code, signal }
      this.#notify()
    })
  }

  get alive(): boolean { return this.exit === null }

  /** Has the daemon logged a JSON line with this event whose fields include `fields`? */
  logged(event: string, fields: Record<string, unknown> = {}): boolean {
    return this.#logLines.some((line) => {
      if (!line.includes(`"event":"${event}"`)) return false
      let value: Record<string, unknown>
      try {
        value = JSON.parse(line) as Record<string, unknown>
      } catch {
        return false
      }
      return Object.entries(fields).every(([key, expected]) => value[key] === expected)
    })
  }

  /** The daemon's first listen address (with /p2p/<id>). */
  get address(): string {
    const address = this.ready?.listen[0]
    if (address === undefined) throw new Error(`${this.name} is not ready`)
    return address
  }

  get peerId(): string {
    if (this.ready === null) throw new Error(`${this.name} is not ready`)
    return this.ready.peerId
  }

  /** Resolves when `condition` holds (checked on every line any daemon prints); rejects after `timeoutMs`. */
  static waitFor(daemons: readonly Daemon[], condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolvePromise, reject) => {
      const check = (): void => {
        if (!condition()) return
        cleanup()
        resolvePromise()
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${Daemon.describe(daemons)}`))
      }, timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        for (const daemon of daemons) daemon.#waiters.delete(check)
      }
      for (const daemon of daemons) daemon.#waiters.add(check)
      check()
    })
  }

  /** The state and last log lines of each daemon, for failure messages. */
  static describe(daemons: readonly Daemon[]): string {
    return daemons.map((daemon) => `--- ${daemon.name} (${daemon.alive ? 'alive' : 'exited'}) status ${JSON.stringify(daemon.status)}\n${daemon.stderrTail.slice(-8).join('\n')}`).join('\n')
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter()
  }
}

/** One agreed leader: exactly one live daemon is the ready leader and every live daemon follows it in its term. */
export function agreedLeader(daemons: readonly Daemon[]): Daemon | null {
  const live = daemons.filter((daemon) => daemon.alive)
  const leaders = live.filter((daemon) => daemon.status?.role === 'leader' && daemon.status.readyLeader)
  if (leaders.length !== 1) return null
  const leader = leaders[0]!
  const agree = live.every((daemon) => daemon.status?.term === leader.status!.term && daemon.status.leaderId === leader.status!.nodeId)
  return agree ? leader : null
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Runs `fabric ARGS` as a process and collects its output; kills it after `timeoutMs`. */
export function runCli(args: readonly string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(nodeBinary, [cliEntry, ...args], { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`fabric ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolvePromise({ code, stdout, stderr })
    })
  })
}
