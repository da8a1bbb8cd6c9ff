// `fabric bench cli`: how long `fabric --help` and a query round trip (`fabric leader --json` against a
// one-node mesh it starts) take as new processes, the way a user runs them (cli/cli-bench.ts).
// Progress goes to stderr; stdout carries one JSON object.
import type { Command } from 'commander'
import { positiveInteger } from '../parse.ts'

export function registerBenchCli(bench: Command): void {
  bench
    .command('cli')
    .description('Time the CLI as a user runs it: `fabric --help` and `fabric leader --json` against a one-node mesh on loopback, each a new process; prints the medians, the samples, CPU time and peak RSS as JSON')
    .option('--runs <n>', 'calls of each to time (after one warm-up call of each)', '5')
    .option('--json', 'print the result as one JSON object (the default; kept for symmetry with other benches)')
    .action(async (flags: { runs: string }) => {
      const runs = positiveInteger('--runs', flags.runs)
      const { runCliBench } = await import('../cli-bench.ts')
      const result = await runCliBench({ runs, progress: (line) => process.stderr.write(`${line}\n`) })
      console.log(JSON.stringify(result))
    })
}
