// `fabric node status`: what one daemon says of itself: role, term, the leader it follows, its
// cluster document's heads and job records, and what it refused or dropped (per layer counters).
import type { Command } from 'commander'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'

export function registerNodeStatus(program: Command): void {
  const node = program.commands.find((command) => command.name() === 'node') ?? program.command('node').description('Run and inspect the Shuttle daemon on this machine')
  addConnectOptions(
    node
      .command('status')
      .description("A daemon's role, term, leader, document heads and refusal counters")
      .option('--json', 'print the answer as JSON'),
  ).action(async (flags: ConnectFlags & { json?: boolean }) => {
    const status = await askDaemon(flags, { kind: 'status' })
    if (flags.json === true) return console.log(JSON.stringify(status, null, 2))
    console.log(`node       ${status.nodeId}`)
    console.log(`role       ${status.role} in term ${status.term}${status.readyLeader ? ' (placing)' : ''}`)
    console.log(`leader     ${status.leaderId ?? '-'}`)
    console.log(`voters     ${status.voters.join(', ')}`)
    console.log(`document   ${status.jobRecords} job record(s); heads ${status.documentHeads.map((head) => head.slice(0, 12)).join(', ')}`)
    console.log(`counters   ${JSON.stringify(status.counters)}`)
  })
}
