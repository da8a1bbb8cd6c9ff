// `fabric bench ...`: benchmarks that print one JSON object (the figures in bench/RESULTS.md).
import type { Command } from 'commander'
import { registerBenchPlacement } from './bench-placement.ts'
import { registerBenchSim } from './bench-sim.ts'
import { registerBenchSnapshots } from './bench-snapshots.ts'
import { registerBenchMigrate } from './bench-migrate.ts'
import { registerBenchMesh } from './bench-mesh.ts'
import { registerBenchCli } from './bench-cli.ts'

export function registerBench(program: Command): void {
  const bench = program
    .command('bench')
    .description('Measure speed and memory; each subcommand prints one JSON object')
  registerBenchSim(bench)
  registerBenchPlacement(bench)
  registerBenchSnapshots(bench)
  registerBenchMigrate(bench)
  registerBenchMesh(bench)
  registerBenchCli(bench)
}
