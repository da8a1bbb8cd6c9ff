// `fabric cancel ID`: cancels every replica of a job, on any node. Printed once the cancel is durable
// on a majority of voters; the nodes running the job then stop it (its whole process tree).
import type { Command } from 'commander'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'

export function registerCancel(program: Command): void {
  addConnectOptions(
    program
      .command('cancel')
      .description('Cancel a job (every replica); prints once the cancel is durable on a majority of voters')
      .argument('<id>', 'job id (a job of several replicas is cancelled whole)')
      .option('--json', 'print {"jobId": ...}'),
  ).action(async (jobId: string, flags: ConnectFlags & { json?: boolean }) => {
    const result = await askDaemon(flags, { kind: 'cancel', jobId })
    console.log(flags.json === true ? JSON.stringify(result) : `cancelled ${result.jobId} (durable on a majority of voters; its runners stop it)`)
  })
}
