// `fabric bench migrate`: downtime of moving a running job between two nodes on this machine
// (checkpoint, pack, transfer over loopback libp2p, write out, restore), per phase. Prints JSON.
import type { Command } from 'commander'
import { positiveInteger } from '../parse.ts'
import { UserError } from '../user-error.ts'

export function registerBenchMigrate(bench: Command): void {
  bench
    .command('migrate')
    .description('Move a counting job holding --memory-mib of memory between two nodes on this machine; prints the downtime and its phases as JSON')
    .option('--runtime <kind>', 'docker or process', 'docker')
    .option('--memory-mib <count>', 'memory the job holds', '100')
    .option('--json', 'print JSON (always on; kept for symmetry)')
    .action(async (flags: { runtime: string; memoryMib: string }) => {
      if (flags.runtime !== 'docker' && flags.runtime !== 'process') throw new UserError(`--runtime must be docker or process, got "${flags.runtime}"`)
      const { benchMigrate } = await import('../../node/bench-migrate.ts')
      const result = await benchMigrate({ runtime: flags.runtime, memoryMiB: positiveInteger('--memory-mib', flags.memoryMib), nowMs: () => performance.now() })
      console.log(JSON.stringify(result))
    })
}
