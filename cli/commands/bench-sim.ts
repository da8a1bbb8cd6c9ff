// `fabric bench sim` and `fabric bench gossip`: simulator speed, failover and gossip convergence.
import type { Command } from 'commander'
import { defaultSimOptions } from '../../sim/options.ts'
import { integer, parseLatencyRange } from '../parse.ts'

export function registerBenchSim(bench: Command): void {
  bench
    .command('sim')
    .description('Simulator speed (virtual/wall), failover and commit latency, gossip coverage; prints JSON')
    .option('--nodes <n>', 'peers', '100')
    .option('--voters <n>', 'committee size', '5')
    .option('--seeds <k>', 'seeds to run', '1')
    .option('--duration <time>', 'virtual time per seed', '60s')
    .option('--rate <jobs/s>', 'jobs per virtual second', '2')
    .option('--faults <list>', 'faults (none for pure speed; crash,partition for failover)', 'none')
    .option('--election-timeout <ms>', 'the least election timeout T (it follows ten measured quorum round trips)', String(defaultSimOptions.electionTimeoutMs))
    .option('--latency <min-max>', 'link latency range in ms', '20-50')
    .option('--workers <n>', 'worker threads', '1')
    .option('--json', 'print JSON (always on; kept for symmetry)')
    .action(async (flags: Record<string, string>) => {
      const [{ simOptionsFromFlags }, { runSeeds, speedupOf, summarize }] = await Promise.all([import('../sim-flags.ts'), import('../../sim/index.ts')])
      const options = simOptionsFromFlags(flags)
      const { faults, electionTimeoutMs, linkLatencyMinMs, linkLatencyMaxMs } = options
      const seeds = Array.from({ length: integer('--seeds', flags.seeds) }, (_, index) => index + 1)
      const started = performance.now()
      const results = await runSeeds(options, seeds, integer('--workers', flags.workers))
      const wallSeconds = (performance.now() - started) / 1000
      const report = summarize(options, results, wallSeconds)
      console.log(JSON.stringify({
        bench: 'sim',
        nodes: options.nodes,
        voters: options.voters,
        seeds: seeds.length,
        faults: faults.join(',') || 'none',
        ratePerSecond: options.ratePerSecond,
        electionTimeoutMs,
        latencyMs: `${linkLatencyMinMs}-${linkLatencyMaxMs}`,
        virtualSeconds: report.virtualSeconds,
        wallSeconds: report.wallSeconds,
        speedup: speedupOf(report.virtualSeconds, wallSeconds),
        violations: report.violations.length,
        jobsSubmitted: report.jobsSubmitted,
        jobsLost: report.jobsLost,
        leaderChanges: report.leaderChanges,
        failoverMs: report.failoverMs,
        failoverSamples: results.reduce((total, result) => total + result.failoverMs.length, 0),
        commitMs: report.commitMs,
        gossip99Ms: report.gossip99Ms,
        gossip99MsP99: report.gossip99MsP99,
        heapUsedMB: Math.round(process.memoryUsage().heapUsed / 1_048_576),
        rssMB: Math.round(process.memoryUsage().rss / 1_048_576),
      }))
    })

  bench
    .command('gossip')
    .description('Gossip convergence on the simulated mesh alone: time for 99% of N peers to see one update')
    .option('--nodes <n>', 'peers', '1000')
    .option('--messages <k>', 'updates to publish', '2000')
    .option('--degree <d>', 'mesh degree (gossipsub D)', '6')
    .option('--latency <min-max>', 'link latency range in ms', '20-50')
    .option('--loss <rate>', 'per-hop loss (repaired a heartbeat later, as IHAVE/IWANT does)', '0')
    .option('--seed <s>', 'seed', '1')
    .option('--json', 'print JSON (always on)')
    .action(async (flags: Record<string, string>) => {
      const { GossipMesh, SeededRandom, SimNetwork, coverageTimeMs, percentile } = await import('../../sim/index.ts')
      const nodes = integer('--nodes', flags.nodes)
      const [linkLatencyMinMs, linkLatencyMaxMs] = parseLatencyRange(flags.latency ?? '20-50')
      const random = new SeededRandom(integer('--seed', flags.seed))
      const network = new SimNetwork(nodes, random.fork('network'), { linkLatencyMinMs, linkLatencyMaxMs, lossRate: Number(flags.loss) })
      const mesh = new GossipMesh(nodes, random.fork('mesh'), integer('--degree', flags.degree))
      const arrivals = new Float64Array(nodes)
      const scratch = new Float64Array(nodes)
      const coverage: number[] = []
      const messages = integer('--messages', flags.messages)
      const started = performance.now()
      for (let index = 0; index < messages; index++) {
        mesh.propagate(random.int(0, nodes), network, () => true, arrivals)
        coverage.push(coverageTimeMs(arrivals, 0.99, scratch))
      }
      const wallMs = performance.now() - started
      console.log(JSON.stringify({
        bench: 'gossip',
        nodes,
        degree: integer('--degree', flags.degree),
        messages,
        latencyMs: `${linkLatencyMinMs}-${linkLatencyMaxMs}`,
        loss: Number(flags.loss),
        coverage99Ms: { p50: percentile(coverage, 0.5), p99: percentile(coverage, 0.99), max: percentile(coverage, 1) },
        propagateUs: Math.round((wallMs * 1000) / messages),
      }))
    })
}
