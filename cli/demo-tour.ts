// What `fabric demo` does, step by step: starts a local mesh of Shuttle daemons (separate processes
// on loopback), submits sample jobs through a follower, shows where the auction placed them, their
// output and one placement explained, SIGKILLs the leader while jobs run, shows the new leader and
// that every job in flight still finishes, then stops everything it started. It talks to the mesh
// the way the CLI does (client protocol over libp2p) and prints plain lines as it goes.
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { clientCall, clientFrames, createClientHost, type Daemon, type JobDetail, LocalMesh } from '../node/index.ts'
import { renderExplanation, type JobExplanation } from '../placement/index.ts'

export interface DemoOptions {
  nodes: number
  /** Seconds each long job runs (they are in flight when the leader is killed). */
  jobSeconds: number
  print(line: string): void
  /** Aborted on Ctrl-C: the tour stops waiting and the mesh is stopped. */
  signal: AbortSignal
}

/** Bounds of the tour's waits (generous: a loaded 2-core machine starts Node processes slowly). */
export const demoLimits = {
  electionTimeoutMs: 30_000,
  jobPlacedTimeoutMs: 30_000,
  /** After the kill: a new election, the node timeout (3 s) before the dead leader's job is placed again, its rerun. */
  failoverFinishTimeoutMs: 120_000,
  pollMs: 200,
  /** Each node offers one core, so the long jobs (0.9 core each) land one per node. */
  cpuMillisPerNode: 1_000,
  memoryMiBPerNode: 2_048,
} as const

export class DemoAbortedError extends Error {
  override name = 'DemoAbortedError'
}

/** What the demo saw, for `fabric demo --json`. */
export interface DemoSummary {
  nodes: number
  /** The first leader and its term. */
  leader: { name: string; term: number }
  hello: { jobId: string; node: string; state: string; exitCode: number | null }
  /** The leader SIGKILLed while the long jobs ran, and how long until the next one led. */
  killed: { name: string; term: number; jobsOnIt: string[] }
  failover: { leader: string; term: number; ms: number }
  longJobs: { jobId: string; node: string; state: string; exitCode: number | null; placements: number }[]
  finishedOnce: boolean
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const started = performance.now()
  const say = (line: string): void => options.print(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`)
  const detail = (line: string): void => options.print(`         ${line}`)
  let mesh: LocalMesh | null = null
  let client: Libp2p | null = null
  const abortCheck = (): void => {
    if (options.signal.aborted) throw new DemoAbortedError('interrupted')
  }
  try {
    say(`starting a local mesh of ${options.nodes} Shuttle daemons, each a separate process on 127.0.0.1`)
    mesh = await LocalMesh.start({
      nodes: options.nodes,
      cpuMillis: demoLimits.cpuMillisPerNode,
      memoryMiB: demoLimits.memoryMiBPerNode,
      logLevel: 'warn',
      onProgress: (message) => detail(message),
    })
    abortCheck()
    const local = mesh
    detail(`data directories under ${local.rootDir}; every node offers ${demoLimits.cpuMillisPerNode / 1000} core and ${demoLimits.memoryMiBPerNode} MiB`)
    const nameOf = (id: string | null): string => local.daemons.find((daemon) => daemon.ready?.peerId === id)?.name ?? (id === null ? '-' : `…${id.slice(-8)}`)
    for (const daemon of local.daemons) detail(`${daemon.name} is ${daemon.peerId} at ${daemon.ready!.listen[0]}`)

    let leader = await local.waitForLeader(demoLimits.electionTimeoutMs)
    abortCheck()
    say(`${leader.name} was elected leader in term ${leader.status!.term}; the others follow it`)
    const firstLeader = { name: leader.name, term: leader.status!.term }

    client = await createClientHost()
    const host = client
    const ask = (daemon: Daemon) => multiaddr(daemon.address)
    const follower = local.live.find((daemon) => daemon !== leader)!
    const job = (daemon: Daemon, jobId: string): Promise<JobDetail> => clientCall(host, ask(daemon), { kind: 'job', jobId }, { signal: options.signal })
    const waitFor = async (what: string, timeoutMs: number, read: () => Promise<boolean>): Promise<void> => {
      const deadline = performance.now() + timeoutMs
      for (;;) {
        abortCheck()
        if (await read().catch(() => false)) return
        if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
        await sleep(demoLimits.pollMs, options.signal)
      }
    }
    const submit = async (spec: object): Promise<string> => (await clientCall(host, ask(follower), { kind: 'submit', spec: JSON.stringify(spec) }, { signal: options.signal })).jobId
    const output = async (through: Daemon, jobId: string): Promise<string> => {
      let text = ''
      for await (const frame of clientFrames(host, ask(through), { kind: 'logs', jobId, follow: false, stream: 'both' }, { signal: options.signal })) {
        if (frame.type === 'log') text += frame.text
        if (frame.type === 'error') return `(no output: ${frame.message})`
      }
      return text
    }

    // 1. A short job, submitted through a follower: placed by the leader's auction, run, output read back.
    say(`submitting a job through ${follower.name} (a follower): sh -c 'echo hello from ...'`)
    const helloId = await submit({ name: 'hello', command: ['sh', '-c', 'echo "hello from job $FABRIC_JOB_ID"; echo "running as pid $$ on $(uname -n)"'], resources: { cpu: '100m', memory: '32Mi' } })
    detail(`acknowledged as ${helloId}: durable on a majority of voters`)
    let hello: JobDetail | null = null
    await waitFor(`${helloId} to finish`, demoLimits.jobPlacedTimeoutMs, async () => {
      hello = await job(follower, helloId)
      return hello.state === 'finished' || hello.state === 'failed'
    })
    const helloDone = hello as unknown as JobDetail
    say(`${helloId} ran on ${nameOf(helloDone.node)} and ${helloDone.state} with exit code ${helloDone.exitCode}; its output, asked of ${follower.name}:`)
    for (const line of (await output(follower, helloId)).trimEnd().split('\n')) detail(`| ${line}`)

    const explained = await clientCall(host, ask(follower), { kind: 'explain', jobId: helloId }, { signal: options.signal }).catch((error: Error) => error)
    if (explained instanceof Error) detail(`(explain: ${explained.message})`)
    else {
      say(`why ${nameOf(helloDone.node)}? the leader explains its auction (fabric explain ${helloId}):`)
      // Node names instead of peer ids, so the table fits a terminal.
      const record = explained.explanation as unknown as JobExplanation
      const named = { ...record, roundId: record.roundId.replaceAll(/12D3KooW\w+/g, (id) => nameOf(id)), rows: record.rows.map((row) => ({ ...row, nodeId: nameOf(row.nodeId) })), awards: record.awards.map((award) => ({ ...award, nodeId: nameOf(award.nodeId) as typeof award.nodeId })) }
      for (const line of renderExplanation(named).split('\n')) detail(line)
    }

    // 2. Long jobs, one per node (each takes 0.9 of the node's one core), in flight when the leader dies.
    const count = local.live.length
    say(`submitting ${count} jobs that each run ${options.jobSeconds} s and take 0.9 core, so one lands on every node`)
    const longIds: string[] = []
    for (let index = 1; index <= count; index++) {
      const script = `for i in $(seq 1 ${options.jobSeconds}); do echo "steps-${index}: step $i of ${options.jobSeconds}"; sleep 1; done`
      longIds.push(await submit({ name: `steps-${index}`, command: ['sh', '-c', script], resources: { cpu: '900m', memory: '32Mi' } }))
    }
    const placedOn = new Map<string, string>()
    await waitFor('every long job to start', demoLimits.jobPlacedTimeoutMs, async () => {
      for (const jobId of longIds) {
        if (placedOn.has(jobId)) continue
        const seen = await job(follower, jobId)
        if (seen.node === null || seen.state !== 'assigned') continue
        const runner = local.live.find((daemon) => daemon.peerId === seen.node)
        if (runner === undefined) continue
        const there = await job(runner, jobId)
        if (there.local?.state === 'running') placedOn.set(jobId, seen.node)
      }
      return placedOn.size === longIds.length
    })
    for (const jobId of longIds) detail(`${jobId} runs on ${nameOf(placedOn.get(jobId)!)}`)

    // 3. Kill the leader with SIGKILL while they run: the one leading now (the mesh may have changed
    // leaders since the start; killing a former one would wait for an election that never comes).
    leader = await local.waitForLeader(demoLimits.electionTimeoutMs)
    const killedTerm = leader.status!.term
    const killed = leader
    const onKilled = longIds.filter((jobId) => placedOn.get(jobId) === killed.peerId)
    say(`SIGKILL ${killed.name}, the leader (pid ${killed.pid}), while ${longIds.length} jobs run${onKilled.length > 0 ? ` (${onKilled.join(', ')} on the leader itself)` : ''}`)
    const killedAt = performance.now()
    await local.kill(killed)
    leader = await local.waitForLeader(demoLimits.electionTimeoutMs, killedTerm)
    const failoverMs = Math.round(performance.now() - killedAt)
    say(`${leader.name} leads term ${leader.status!.term}, ${(failoverMs / 1000).toFixed(2)} s after the kill`)
    if (onKilled.length > 0) detail(`the leader's job died with it; once ${killed.name} is silent for the node timeout (3 s) the new leader places it again, where room frees up`)

    const survivor = local.live.find((daemon) => daemon !== leader) ?? leader
    const finals = new Map<string, JobDetail>()
    await waitFor('every long job to finish', demoLimits.failoverFinishTimeoutMs, async () => {
      for (const jobId of longIds) {
        if (finals.has(jobId)) continue
        const seen = await job(survivor, jobId)
        if (seen.state === 'finished' || seen.state === 'failed' || seen.state === 'cancelled') {
          finals.set(jobId, seen)
          say(`${jobId} ${seen.state} on ${nameOf(seen.node)} (exit ${seen.exitCode})${seen.assignments.length > 1 ? `, placed ${seen.assignments.length} times: its first run died with ${killed.name}` : ''}`)
        }
      }
      return finals.size === longIds.length
    })
    const lastId = onKilled[0] ?? longIds[0]!
    // Asked of a node that did not run it: the answer is passed on from the node that did.
    const asked = local.live.find((daemon) => daemon.peerId !== finals.get(lastId)?.node) ?? survivor
    say(`the last lines of ${lastId}'s output, asked of ${asked.name}:`)
    for (const line of (await output(asked, lastId)).trimEnd().split('\n').slice(-3)) detail(`| ${line}`)
    // Each job's record holds one run per node that reported one: exactly one of them finished (a job
    // already moved to the archive keeps no runs; it is seen within a poll of finishing, well before).
    const finishedOnce = [...finals.values()].every((seen) => seen.state === 'finished' && (seen.archived || seen.runs.filter((run) => run.state === 'finished').length === 1))
    say(finishedOnce ? `all ${longIds.length} jobs in flight at the kill finished, each with exactly one finished run, with ${killed.name} dead` : `not every job finished exactly once: ${[...finals.values()].map((seen) => `${seen.id} ${seen.state} (${seen.runs.map((run) => `${nameOf(run.node)}: ${run.state}`).join(', ')})`).join('; ')}`)
    if (!finishedOnce) throw new Error('a job in flight at the kill did not finish exactly once')
    return {
      nodes: options.nodes,
      leader: firstLeader,
      hello: { jobId: helloId, node: nameOf(helloDone.node), state: helloDone.state, exitCode: helloDone.exitCode },
      killed: { name: killed.name, term: killedTerm, jobsOnIt: onKilled },
      failover: { leader: leader.name, term: leader.status!.term, ms: failoverMs },
      longJobs: longIds.map((jobId) => {
        const seen = finals.get(jobId)!
        return { jobId, node: nameOf(seen.node), state: seen.state, exitCode: seen.exitCode, placements: seen.assignments.length }
      }),
      finishedOnce,
    }
  } finally {
    try {
      await client?.stop()
    } catch {
      // the client host is ours alone; nothing to clean up if it fails to stop
    }
    if (mesh !== null) {
      say('stopping every daemon the demo started')
      await mesh.stop()
      detail(`stopped; removed ${mesh.rootDir}`)
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done)
  })
}
