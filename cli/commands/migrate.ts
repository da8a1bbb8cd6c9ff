// `fabric migrate ID [--to NODE | --provider P --region R]`: asks for a running job to move: its runner
// checkpoints it, the leader places it again (on NODE; or where the provider/region allow, under the
// job's own constraints; or anywhere but where it runs) and it is restored there. Printed once the
// request is durable on a majority of voters; a job with nothing running, or a place no registered
// node is in, is refused. With --follow it then prints each copy as it moves, with a progress bar of
// the target's fetch and restore.
import type { Command } from 'commander'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { positiveInteger } from '../parse.ts'
import { ProgressBar } from '../progress-bar.ts'
import { UserError } from '../user-error.ts'
import { describeMove } from './drain.ts'

interface MigrateFlags extends ConnectFlags {
  to?: string
  provider?: string
  region?: string
  follow?: boolean
  wait: string
  json?: boolean
}

export function registerMigrate(program: Command): void {
  addConnectOptions(
    program
      .command('migrate')
      .description('Move a running job to another node (checkpoint, place again, restore); prints once the request is durable')
      .argument('<id>', 'job id (every running replica moves)')
      .option('--to <node>', 'the node to move to (a peer id from `fabric nodes`); default: the auction picks another')
      .option('--provider <name>', 'move only to a node of this provider (the auction decides which)')
      .option('--region <name>', 'move only to a node in this region (the auction decides which)')
      .option('-f, --follow', 'then wait for each copy to move, with a progress bar of the restore')
      .option('--wait <ms>', 'with --follow: how long to wait for the move', '120000')
      .option('--json', 'print {"jobId": ..., "to": ...} (with --follow: progress and moves as JSON lines first)'),
  ).action(async (jobId: string, flags: MigrateFlags) => {
    const [{ clientWireLimits }, { withDaemon }, { streamCall }] = await Promise.all([import('../../node/client-wire.ts'), import('../daemon-client.ts'), import('../stream-call.ts')])
    const to = flags.to ?? null
    if (to !== null && (flags.provider !== undefined || flags.region !== undefined)) throw new UserError('give either --to NODE or --provider/--region, not both', '--to picks the node; --provider and --region let the auction pick among the nodes there')
    for (const [flag, value] of [['--provider', flags.provider], ['--region', flags.region]] as const) if (value !== undefined && value.trim() === '') throw new UserError(`${flag} must not be empty`)
    const follow = flags.follow === true
    const waitMs = positiveInteger('--wait', flags.wait)
    if (waitMs > clientWireLimits.maxMoveWaitMs) throw new UserError(`--wait may be at most ${clientWireLimits.maxMoveWaitMs} ms, got ${waitMs}`)
    const json = flags.json === true
    const bar = new ProgressBar()
    const body = { kind: 'migrate' as const, jobId, to, ...(flags.provider === undefined ? {} : { provider: flags.provider }), ...(flags.region === undefined ? {} : { region: flags.region }), ...(follow ? { follow, waitMs } : {}) }
    const answerWithinMs = (follow ? waitMs : 0) + positiveInteger('--timeout', flags.timeout)
    const result = await withDaemon(flags, ({ libp2p, target }) =>
      streamCall(libp2p, target, body, AbortSignal.timeout(answerWithinMs), (frame) => {
        if (json) console.log(JSON.stringify(frame))
        else if (frame.type === 'progress') bar.update(frame)
        else {
          bar.done()
          console.log(`moved ${describeMove(frame)}`)
        }
      }).finally(() => bar.done()),
    )
    if (json) return console.log(JSON.stringify(result))
    const where = to !== null ? `to ${to}` : flags.provider !== undefined || flags.region !== undefined ? `to ${[flags.provider === undefined ? null : `provider ${flags.provider}`, flags.region === undefined ? null : `region ${flags.region}`].filter(Boolean).join(', ')}` : 'to another node'
    if (!follow) return console.log(`migration of ${result.jobId} ${where} requested (durable on a majority of voters)`)
    const waiting = (result.moved ?? []).filter((view) => view.how === 'waiting')
    console.log(`migration of ${result.jobId} ${where}: ${waiting.length === 0 ? 'done' : `still waiting for ${waiting.map((view) => view.jobId).join(', ')}`}`)
  })
}
