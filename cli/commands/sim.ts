// `fabric sim`: run the real consensus core on the deterministic simulator under chaos.
import type { Command } from 'commander'
import { brokenVariants } from '../../consensus/types.ts'
import { allFaults, defaultSimOptions } from '../../sim/options.ts'
import type { SimReport } from '../../sim/index.ts'
import { integer } from '../parse.ts'

export function registerSim(program: Command): void {
  program
    .command('sim')
    .description(
      'Run N peers built from the real consensus core on a simulated network with a virtual clock.\n' +
        'Each seed draws every random choice (latencies, faults, workload); a failing run prints its\n' +
        'seed, and `fabric sim --seed S` (with the same other flags) replays it exactly.',
    )
    .option('--nodes <n>', 'peers in the mesh', String(defaultSimOptions.nodes))
    .option('--voters <n>', 'committee size (3, 5 or 7)', String(defaultSimOptions.voters))
    .option('--seeds <k>', 'run seeds 1..k', '1')
    .option('--seed <s>', 'run (replay) exactly this seed')
    .option('--duration <time>', 'virtual time per seed (e.g. 120s, 2m)', '120s')
    .option('--faults <list>', `comma list of ${allFaults.join(', ')}; or all, none`, 'all')
    .option('--rate <jobs/s>', 'jobs submitted per virtual second', String(defaultSimOptions.ratePerSecond))
    .option('--fleet <file>', 'the nodes (YAML, see examples/fleet.yaml); sets the node count. Default: a generated heterogeneous fleet')
    .option('--workload <file>', 'the job mix (YAML, see examples/mixed.yaml): templates drawn by rate or weight, arriving at --rate')
    .option('--election-timeout <ms>', 'the least election timeout T (it follows ten measured quorum round trips; followers wait [T, 2T))', String(defaultSimOptions.electionTimeoutMs))
    .option('--latency <min-max>', 'link latency range in ms', `${defaultSimOptions.linkLatencyMinMs}-${defaultSimOptions.linkLatencyMaxMs}`)
    .option('--workers <n>', 'worker threads (default: one per core)')
    .option('--broken <variant>', `run a core with a planted bug to prove the checker catches it (${brokenVariants.filter((variant) => variant !== 'none').join(', ')})`, 'none')
    .option('--full', 'with --broken: run every seed to its end (by default a planted-bug seed stops at its first violation)')
    .option('--json', 'print the report as one JSON object on the last line')
    .addHelpText(
      'after',
      '\nReading the report: `violations` is empty when every invariant held (one leader per term,\n' +
        'one valid lease, committed decisions survive leader changes, acknowledged jobs are never lost,\n' +
        'no over-commit, one copy per job after heal, liveness after the faults stop). failoverMs is the\n' +
        'time from losing the leader to a new leader ready to decide; commitMs from a decision to its\n' +
        'majority acknowledgement; gossip99Ms the time for 99% of peers to see a capacity update.\n' +
        'Placement: placementMs is submission to first start; costVsOptimal divides what the auctions\n' +
        'awarded by the cheapest bid with room in each round (1 = always the cheapest; only lowest_cost\n' +
        'jobs aim there, see costVsOptimalByStrategy); unplaceable counts replicas pending with a reason.\n\n' +
        'Examples:\n  fabric sim --nodes 25 --voters 5 --seeds 20 --duration 120s --faults all --json\n  fabric sim --nodes 50 --seeds 20 --faults all --workload examples/mixed.yaml --json\n  fabric sim --seed 7 --duration 60s',
    )
    .action(async (flags: Record<string, string | boolean | undefined>) => {
      const [{ simOptionsFromFlags }, { runSeeds, speedupOf, summarize }] = await Promise.all([import('../sim-flags.ts'), import('../../sim/index.ts')])
      const options = simOptionsFromFlags(flags)
      const seeds = flags.seed !== undefined ? [integer('--seed', flags.seed)] : Array.from({ length: integer('--seeds', flags.seeds ?? '1') }, (_, index) => index + 1)
      const workers = flags.workers !== undefined ? integer('--workers', flags.workers) : undefined
      const json = flags.json === true
      const started = performance.now()
      const results = await runSeeds(options, seeds, workers, (result) => {
        if (!json) process.stderr.write(`seed ${result.seed}: ${result.violations.length === 0 ? 'ok' : `${result.violations.length} violation(s)`}, ${result.jobsSubmitted} jobs\n`)
      })
      const report = summarize(options, results, (performance.now() - started) / 1000)
      if (json) console.log(JSON.stringify(report))
      else printReport(report, speedupOf(report.virtualSeconds, report.wallSeconds))
      if (report.violations.length > 0) process.exitCode = 1
    })
}

function printReport(report: SimReport, speedup: number): void {
  const line = (label: string, value: string): void => console.log(`${label.padEnd(22)}${value}`)
  console.log('')
  line('seeds', `${report.seeds.length} (${report.seeds[0]}..${report.seeds.at(-1)})`)
  line('mesh', `${report.nodes} nodes, ${report.voters} voters, faults: ${report.faults.join(',') || 'none'}`)
  line('jobs', `${report.jobsSubmitted} submitted, ${report.jobsAcknowledged} acknowledged, ${report.jobsLost} lost`)
  line('replicas', `${report.replicasSubmitted} submitted, ${report.replicasFinished} finished, ${report.unplaceable.count} pending with a reason ${JSON.stringify(report.unplaceable.reasons)}`)
  line('placement', `${report.placementsPerSec}/s in ${report.auctionRounds} auctions; submit->start p50 ${report.placementMs.p50} ms, p99 ${report.placementMs.p99} ms`)
  line('cost vs optimal', `${report.costVsOptimal} overall; ${Object.entries(report.costVsOptimalByStrategy).map(([strategy, ratio]) => `${strategy} ${ratio}`).join(', ')}`)
  line('migrations', `${report.migrations.requested} asked, ${report.migrations.checkpointed} checkpoints, ${report.migrations.restored} restored`)
  line('retries', `${report.retries.failedRuns} runs failed, ${report.retries.retried} replicas started again after a failure`)
  line('utilization', `CPU ${(report.utilization.cpu * 100).toFixed(1)}%, GPU ${(report.utilization.gpu * 100).toFixed(1)}%`)
  line('leaders', `${report.leaderChanges} elections, at most ${report.maxLeadersPerTerm} per term`)
  line('failover', `p50 ${report.failoverMs.p50} ms, p99 ${report.failoverMs.p99} ms`)
  line('commit', `p50 ${report.commitMs.p50} ms, p99 ${report.commitMs.p99} ms`)
  line('gossip 99% coverage', `median ${report.gossip99Ms} ms, p99 ${report.gossip99MsP99} ms`)
  line('speed', `${report.virtualSeconds} virtual s in ${report.wallSeconds} s (${speedup}x)`)
  if (report.stoppedAtFirstViolation.length > 0) line('stopped early', `${report.stoppedAtFirstViolation.length} seed(s) at their first violation (--full runs them out): ${report.stoppedAtFirstViolation.map(({ seed, atMs }) => `${seed} at ${(atMs / 1000).toFixed(1)} s`).join(', ')}`)
  if (report.violations.length === 0) {
    line('violations', 'none: every invariant held')
    return
  }
  line('violations', String(report.violations.length))
  for (const violation of report.violations.slice(0, 5)) {
    console.log(`\n  ${violation.invariant} (seed ${violation.seed}, t=${(violation.virtualMs / 1000).toFixed(3)}s): ${violation.detail}`)
    console.log(`  replay: fabric sim --seed ${violation.seed} [same flags]`)
    for (const entry of violation.trace.slice(-12)) console.log(`    ${entry}`)
  }
}
