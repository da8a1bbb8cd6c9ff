// Integration: three real Shuttle processes on 127.0.0.1 elect one leader over libp2p; after the
// leader is SIGKILLed the two others elect a new one within a bound; the killed daemon, restarted
// on its data directory, comes back with the same identity and at least the term it had stored,
// and follows the new leader. Daemons report through the JSON lines they print on stdout.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadOrCreateIdentity } from './identity.ts'
import { Daemon, agreedLeader } from './testing/daemon-process.ts'

/** Bounds of the waits below (generous against a loaded CI machine; typical values are far lower). */
const readyTimeoutMs = 15_000
const electionTimeoutMs = 15_000
const failoverBoundMs = 10_000
const exitTimeoutMs = 10_000

const started: Daemon[] = []
const directories: string[] = []

afterAll(async () => {
  for (const daemon of started) if (daemon.alive && daemon.child.pid !== undefined) process.kill(daemon.child.pid, 'SIGKILL')
  await Promise.all(started.map((daemon) => (daemon.alive ? new Promise((done) => daemon.child.once('exit', done)) : undefined)))
  for (const dir of directories) await rm(dir, { recursive: true, force: true })
})

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
