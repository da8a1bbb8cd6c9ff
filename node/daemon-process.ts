// A Shuttle daemon as a child process (`fabric node start`), observed through the JSON lines it
// prints on stdout (ready, status) and the tail of its stderr log. The local mesh (demo, mesh
// benchmark) and the integration tests drive daemons through it. Waits are bounded and event-driven.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { procStatFields } from '../runtime/isolation.ts'

/** USER_HZ: Linux reports process times in hundredths of a second on every architecture we run. */
const clockTicksPerSecond = 100

export const repositoryRoot = resolve(import.meta.dirname, '..')
export const cliEntry = join(repositoryRoot, 'cli/main.ts')
/** Lines of a daemon's stderr kept for error messages. */
export const maxStderrTailLines = 40

export interface StatusLine { event: 'status'; nodeId: string; role: string; term: number; leaderId: string | null; readyLeader: boolean }
export interface ReadyLine { event: 'ready'; peerId: string; listen: string[]; term: number }

export interface DaemonProcessOptions {
  /** The Node binary (default: the one running this process, which is the project's Node 24). */
  nodeBinary?: string
  /** Run the daemon in this network namespace (`ip netns exec`, which execs it: the PID is the daemon's). */
  netns?: string
  /** The daemon's environment (default: this process's), e.g. a PATH with a stand-in nvidia-smi first. */
  env?: NodeJS.ProcessEnv
}

/** Log lines each Daemon keeps for `logged` (a test's whole run stays far below this). */
export const maxKeptLogLines = 50_000

export class Daemon {
  readonly child: ChildProcess
  readonly name: string
  readonly args: readonly string[]
  ready: ReadyLine | null = null
  status: StatusLine | null = null
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null
  readonly stderrTail: string[] = []
  /** Every stderr line so far (bounded by maxKeptLogLines), for `logged`. */
  readonly #logLines: string[] = []
  readonly #waiters = new Set<() => void>()
  readonly #exited: Promise<void>

  constructor(name: string, args: readonly string[], options: DaemonProcessOptions = {}) {
    this.name = name
    this.args = args
    const command = [options.nodeBinary ?? process.execPath, cliEntry, 'node', 'start', ...args]
    const [file, ...rest] = options.netns === undefined ? command : ['ip', 'netns', 'exec', options.netns, ...command]
    this.child = spawn(file!, rest, { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'], ...(options.env === undefined ? {} : { env: options.env }) })
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let value: ReadyLine | StatusLine
      try {
        value = JSON.parse(line) as ReadyLine | StatusLine
      } catch {
        return // not one of the daemon's JSON lines
      }
      if (value.event === 'ready') this.ready = value
      if (value.event === 'status') this.status = value
      this.#notify()
    })
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.stderrTail.push(line)
      if (this.stderrTail.length > maxStderrTailLines) this.stderrTail.shift()
      if (this.#logLines.length < maxKeptLogLines) this.#logLines.push(line)
      this.#notify() // waiters may watch for a log event (`logged`)
    })
    this.#exited = new Promise((resolveExit) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal }
        this.#notify()
        resolveExit()
      })
    })
    // A daemon that cannot be spawned at all counts as exited.
    this.child.on('error', (error) => {
      this.stderrTail.push(`spawn failed: ${error.message}`)
      if (this.exit === null) {
        this.exit = { code: null, signal: null }
        this.#notify()
      }
    })
  }

  get alive(): boolean { return this.exit === null }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} has no process`)
    return this.child.pid
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

  /** Sends `signal` if the process still runs. */
  kill(signal: NodeJS.Signals): void {
    if (this.alive && this.child.pid !== undefined) {
      try {
        process.kill(this.child.pid, signal)
      } catch {
        // it exited meanwhile
      }
    }
  }

  /** Resolves once the process exited. */
  exited(): Promise<void> { return this.#exited }

  /** The process's resident set size in bytes (Linux: VmRSS of /proc/PID/status), or null where unreadable. */
  rssBytes(): number | null {
    try {
      const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))
      return match === null ? null : Number(match[1]) * 1024
    } catch {
      return null
    }
  }

  /** CPU seconds the daemon itself has used (utime + stime of /proc/PID/stat; its jobs not counted), or null. */
  cpuSeconds(): number | null {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8')
      const fields = procStatFields(stat)
      // Fields 14 and 15 of proc(5), in clock ticks (100 per second on Linux).
      return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond
    } catch {
      return null
    }
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

  /** Every JSON line logged with this event, parsed (for assertions on nested fields). */
  events(event: string): Record<string, unknown>[] {
    return this.#logLines.filter((line) => line.includes(`"event":"${event}"`)).flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>]
      } catch {
        return []
      }
    })
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
