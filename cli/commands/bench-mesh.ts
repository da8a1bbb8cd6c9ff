// `fabric bench mesh`: starts real daemons on loopback and measures submit -> committed assignment
// latency (one at a time, paced, saturated), jobs/s, leader SIGKILL -> placing again, and idle RSS
// (node/mesh-bench.ts). Progress goes to stderr; stdout carries one JSON object.
import type { Command } from 'commander'
import { localMeshRequestFanout, maxLocalMeshNodes } from '../../node/local-mesh-limits.ts'
import { defaultPacedRatePerSec } from '../../node/mesh-bench-defaults.ts'
import { integer, positiveInteger } from '../parse.ts'
import { UserError } from '../user-error.ts'

export function registerBenchMesh(bench: Command): void {
  bench
    .command('mesh')
    .description('Start N daemons as processes on loopback; measure submit -> committed assignment latency (one at a time on the idle mesh, at a paced rate, and saturated), jobs/s, leader SIGKILL -> placing again, and idle RSS')
    .option('--nodes <n>', `daemons to start (3 to ${maxLocalMeshNodes})`, '5')
    .option('--jobs <n>', 'jobs to submit in each of the paced and the saturated phases (through the non-leader nodes)', '1000')
    .option('--rate <n>', 'the paced phase: submissions per second, each on its schedule (0: no paced phase)', String(defaultPacedRatePerSec))
    .option('--concurrency <n>', 'submissions in flight at once in the saturated phase', '16')
    .option('--idle-samples <n>', 'submissions timed one at a time on the idle mesh before the load', '100')
    .option('--idle-interval-ms <ms>', 'pause before each of those', '200')
    .option('--kills <n>', 'leader SIGKILLs to time (each killed daemon is restarted before the next)', '3')
    .option('--idle-ms <ms>', 'how long the mesh idles before RSS is read', '3000')
    .option('--request-fanout <mode>', `the daemons' --request-fanout: majority or all-voters (the daemon's own default)`, localMeshRequestFanout)
    .option('--json', 'print the result as one JSON object (the default; kept for symmetry with other benches)')
    .action(async (flags: { nodes: string; jobs: string; rate: string; concurrency: string; idleSamples: string; idleIntervalMs: string; kills: string; idleMs: string; requestFanout: string }) => {
      const nodes = positiveInteger('--nodes', flags.nodes)
      if (nodes < 3 || nodes > maxLocalMeshNodes) throw new UserError(`--nodes must be 3 to ${maxLocalMeshNodes}, got ${nodes}`, 'a leader must survive losing one node')
      const requestFanout = flags.requestFanout
      if (requestFanout !== 'all-voters' && requestFanout !== 'majority') throw new UserError(`--request-fanout must be all-voters or majority, got "${requestFanout}"`)
      const { runMeshBench } = await import('../../node/mesh-bench.ts')
      const result = await runMeshBench({
        nodes,
        jobs: positiveInteger('--jobs', flags.jobs),
        ratePerSec: integer('--rate', flags.rate),
        concurrency: positiveInteger('--concurrency', flags.concurrency),
        idleSamples: integer('--idle-samples', flags.idleSamples),
        idleIntervalMs: integer('--idle-interval-ms', flags.idleIntervalMs),
        kills: integer('--kills', flags.kills),
        idleMs: integer('--idle-ms', flags.idleMs),
        requestFanout,
        progress: (line) => process.stderr.write(`${line}\n`),
      })
      console.log(JSON.stringify(result))
    })
}
