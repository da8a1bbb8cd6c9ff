// `fabric migrate ID [--to NODE]`: asks for a running job to move: its runner checkpoints it, the
// leader places it again (on NODE, or anywhere but where it runs) and it is restored there. Printed
// once the request is durable on a majority of voters; a job with nothing running is refused.
import type { Command } from 'commander'
import { clientCall } from '../../node/index.ts'
import { addConnectOptions, withDaemon, type ConnectFlags } from '../daemon-client.ts'

export function registerMigrate(program: Command): void {
  addConnectOptions(
    program
      .command('migrate')
      .description('Move a running job to another node (checkpoint, place again, restore); prints once the request is durable')
      .argument('<id>', 'job id (every running replica moves)')
      .option('--to <node>', 'the node to move to (a peer id from `fabric nodes`); default: the auction picks another')
      .option('--json', 'print {"jobId": ..., "to": ...}'),
  ).action(async (jobId: string, flags: ConnectFlags & { to?: string; json?: boolean }) => {
    const to = flags.to ?? null
    const result = await withDaemon(flags, ({ libp2p, target, signal }) => clientCall(libp2p, target, { kind: 'migrate', jobId, to }, { signal }))
    if (flags.json === true) return console.log(JSON.stringify(result))
    console.log(`migration of ${result.jobId} ${result.to === null ? 'to another node' : `to ${result.to}`} requested (durable on a majority of voters)`)
  })
}
