// `fabric bench placement`: times the placement core (placeBatch) on a synthetic fleet and job
// batch and prints one JSON object (the last line with --json).
import type { Command } from 'commander'
import { UserError } from '../user-error.ts'
import { positiveInteger } from '../parse.ts'

export function registerBenchPlacement(bench: Command): void {
  bench
    .command('placement')
    .description('Place a synthetic batch of jobs on a synthetic fleet with the auction core; reports placements per second')
    .option('--nodes <count>', 'nodes in the synthetic fleet', '1000')
    .option('--jobs <count>', 'jobs in the batch', '100000')
    .option('--seed <seed>', 'seed for the synthetic fleet and jobs', '1')
    .option('--json', 'print only the JSON object')
    .action(async (options: { nodes: string; jobs: string; seed: string; json?: boolean }) => {
      const nodes = positiveInteger('--nodes', options.nodes)
      const jobs = positiveInteger('--jobs', options.jobs)
      const seed = Number(options.seed)
      if (!Number.isInteger(seed)) throw new UserError(`--seed expects an integer, got "${options.seed}"`)
      const { benchPlacement } = await import('../../placement/index.ts')
      const result = benchPlacement({ nodes, jobs, seed, meter: { nowMs: () => performance.now(), heapUsedBytes: () => process.memoryUsage().heapUsed } })
      if (!options.json) {
        console.log(`placed ${result.placed} of ${result.jobs} jobs (${result.replicasPlaced} replicas) on ${result.nodes} nodes in ${result.wallMs} ms`)
        console.log(`${result.placementsPerSec} placements/s, ${result.unplaceable} pending with a reason, cost vs lower bound ${result.costVsOptimal}`)
      }
      console.log(JSON.stringify(result))
    })
}
