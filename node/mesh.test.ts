// Integration: three real Shuttle processes on 127.0.0.1 elect one leader over libp2p; after the
// leader is SIGKILLed the two others elect a new one within a bound; the killed daemon, restarted
// on its data directory, comes back with the same identity and at least the term it had stored,
// and follows the new leader. Daemons report through the JSON lines they print on stdout.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { loadOrCreateIdentity } from './identity.ts'

const root = resolve(import.meta.dirname, '..')
const nodeBinary = join(root, 'node_modules/.bin/node')
const entry = join(root, 'cli/main.ts')
/** Bounds of the waits below (generous against a loaded CI machine; typical values are far lower). */
const readyTimeoutMs = 15_000
const electionTimeoutMs = 15_000
const failoverBoundMs = 10_000
const exitTimeoutMs = 10_000

interface StatusLine { event: 'status'; nodeId: string; role: string; term: number; leaderId: string | null; readyLeader: boolean }
interface ReadyLine { event: 'ready'; peerId: string; listen: string[]; term: number }

class Daemon {
  readonly child: ChildProcess
  readonly name: string
  ready: ReadyLine | null = null
  status: StatusLine | null = null
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null
  readonly stderrTail: string[] = []
  readonly #waiters = new Set<() => void>()

  constructor(name: string, args: string[]) {
    this.name = name
    this.child = spawn(nodeBinary, [entry, 'node', 'start', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const value = JSON.parse(line) as ReadyLine | StatusLine
      if (value.event === 'ready') this.ready = value
      if (value.event === 'status') this.status = value
      this.#notify()
    })
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.stderrTail.push(line)
      if (this.stderrTail.length > 40) this.stderrTail.shift()
    })
    this.child.on('exit', (code, signal) => {
      this.exit = { code, signal }
      this.#notify()
    })
  }

  get alive(): boolean { return this.exit === null }

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
        const logs = daemons.map((daemon) => `--- ${daemon.name} (${daemon.alive ? 'alive' : 'exited'}) status ${JSON.stringify(daemon.status)}\n${daemon.stderrTail.slice(-8).join('\n')}`)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${logs.join('\n')}`))
      }, timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        for (const daemon of daemons) daemon.#waiters.delete(check)
      }
      for (const daemon of daemons) daemon.#waiters.add(check)
      check()
    })
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter()
  }
}

const started: Daemon[] = []
const directories: string[] = []

afterAll(async () => {
  for (const daemon of started) if (daemon.alive && daemon.child.pid !== undefined) process.kill(daemon.child.pid, 'SIGKILL')
  await Promise.all(started.map((daemon) => (daemon.alive ? new Promise((done) => daemon.child.once('exit', done)) : undefined)))
  for (const dir of directories) await rm(dir, { recursive: true, force: true })
})

/** One agreed leader: exactly one live daemon is the ready leader and every live daemon follows it in its term. */
function agreedLeader(daemons: readonly Daemon[]): Daemon | null {
  const live = daemons.filter((daemon) => daemon.alive)
  const leaders = live.filter((daemon) => daemon.status?.role === 'leader' && daemon.status.readyLeader)
  if (leaders.length !== 1) return null
  const leader = leaders[0]!
  const agree = live.every((daemon) => daemon.status?.term === leader.status!.term && daemon.status.leaderId === leader.status!.nodeId)
  return agree ? leader : null
}

describe('a mesh of three Shuttle processes', () => {
  it('elects one leader, fails over after SIGKILL, and a restarted daemon keeps its identity and term', async () => {
    const dataDirs = await Promise.all([0, 1, 2].map(() => mkdtemp(join(tmpdir(), 'fabric-mesh-'))))
    directories.push(...dataDirs)
    const ids = await Promise.all(dataDirs.map(async (dir) => (await loadOrCreateIdentity(dir)).nodeId))
    // Each daemon lists the committee in a different order: the genesis must not depend on it.
    const votersFor = (index: number): string => [...ids.slice(index), ...ids.slice(0, index)].join(',')

    const daemons: Daemon[] = []
    for (let index = 0; index < 3; index++) {
      const bootstrap = daemons.flatMap((daemon) => ['--bootstrap', daemon.ready!.listen[0]!])
      const daemon = new Daemon(`d${index}`, ['--data', dataDirs[index]!, '--voters', votersFor(index), ...bootstrap])
      started.push(daemon)
      daemons.push(daemon)
      await Daemon.waitFor([daemon], () => daemon.ready !== null, readyTimeoutMs, `${daemon.name} ready`)
      expect(daemon.ready!.peerId).toBe(ids[index]) // the daemon uses the identity in its data directory
      expect(daemon.ready!.listen[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    }

    await Daemon.waitFor(daemons, () => agreedLeader(daemons) !== null, electionTimeoutMs, 'one agreed leader')
    const first = agreedLeader(daemons)!
    const firstTerm = first.status!.term
    expect(firstTerm).toBeGreaterThan(0)

    const killedAt = performance.now()
    process.kill(first.child.pid!, 'SIGKILL')
    await Daemon.waitFor(daemons, () => !first.alive, exitTimeoutMs, 'the killed leader to exit')
    const survivors = daemons.filter((daemon) => daemon !== first)
    await Daemon.waitFor(
      survivors,
      () => {
        const leader = agreedLeader(survivors)
        return leader !== null && leader.status!.term > firstTerm
      },
      failoverBoundMs,
      'a new leader among the survivors',
    )
    const failoverMs = performance.now() - killedAt
    const second = agreedLeader(survivors)!
    expect(second).not.toBe(first)
    console.log(`failover after SIGKILL: ${failoverMs.toFixed(0)} ms (term ${firstTerm} -> ${second.status!.term})`)

    // Restart the killed daemon on its data directory, without --voters: the store holds the cluster.
    const index = daemons.indexOf(first)
    const restarted = new Daemon(`${first.name}-restarted`, ['--data', dataDirs[index]!, ...survivors.flatMap((daemon) => ['--bootstrap', daemon.ready!.listen[0]!])])
    started.push(restarted)
    await Daemon.waitFor([restarted], () => restarted.ready !== null, readyTimeoutMs, 'the restarted daemon ready')
    expect(restarted.ready!.peerId).toBe(first.ready!.peerId)
    expect(restarted.ready!.term).toBeGreaterThanOrEqual(firstTerm) // reloaded from the level store
    const mesh = [...survivors, restarted]
    await Daemon.waitFor(mesh, () => agreedLeader(mesh) !== null && restarted.status?.role === 'follower', electionTimeoutMs, 'the restarted daemon to follow the leader')

    // SIGTERM stops every daemon cleanly (exit code 0).
    for (const daemon of mesh) daemon.child.kill('SIGTERM')
    await Daemon.waitFor(mesh, () => mesh.every((daemon) => !daemon.alive), exitTimeoutMs, 'every daemon to exit on SIGTERM')
    for (const daemon of mesh) expect(daemon.exit).toEqual({ code: 0, signal: null })
  }, 60_000)
})
