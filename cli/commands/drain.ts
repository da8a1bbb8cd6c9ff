// `fabric drain NODE` (admin): the node takes no new work and every job on it moves away (checkpoint
// and restore elsewhere; a job that cannot be checkpointed is placed again from its latest snapshot,
// or afresh). Prints each job as it moves and a summary once all did (or --wait ran out).
// `fabric undrain NODE` lets the node take work again (what moved stays where it went).
import type { Command } from 'commander'
import type { MovedView } from '../../node/client-wire.ts'
import { UserError } from '../user-error.ts'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { positiveInteger } from '../parse.ts'
import { shortId } from '../table.ts'

export const defaultDrainWaitMs = 120_000

export function describeMove(view: MovedView): string {
  switch (view.how) {
    case 'restored':
      return `${view.jobId}: ${shortId(view.from)} -> ${shortId(view.to)} (restored from ${view.cid})`
    case 'restarted':
      return `${view.jobId}: ${shortId(view.from)} -> ${shortId(view.to)} (no checkpoint of its own: ${view.cid === null ? 'started afresh' : `restarted from ${view.cid}`})`
    case 'finished':
      return `${view.jobId}: ended before it moved`
    case 'waiting':
      return `${view.jobId}: still on ${shortId(view.from)} (not moved yet)`
  }
}

export function registerDrain(program: Command): void {
  addConnectOptions(
    program
      .command('drain')
      .description('Drain a node (admin): no new work goes there and its jobs move elsewhere; prints what moved')
      .argument('<node>', 'the node to drain (a peer id from `fabric nodes`)')
      .option('--wait <ms>', 'how long to wait for its jobs to move', String(defaultDrainWaitMs))
      .option('--json', 'each move and then the result as JSON lines'),
  ).action(async (nodeId: string, flags: ConnectFlags & { wait: string; json?: boolean }) => {
    const [{ clientWireLimits }, { withDaemon }, { streamCall }] = await Promise.all([import('../../node/client-wire.ts'), import('../daemon-client.ts'), import('../stream-call.ts')])
    const waitMs = positiveInteger('--wait', flags.wait)
    const json = flags.json === true
    if (waitMs > clientWireLimits.maxMoveWaitMs) throw new UserError(`--wait may be at most ${clientWireLimits.maxMoveWaitMs} ms, got ${waitMs}`)
    const answerWithinMs = waitMs + positiveInteger('--timeout', flags.timeout)
    const result = await withDaemon(flags, ({ libp2p, target }) =>
      // The daemon waits up to --wait for the jobs to move; --timeout bounds its answer beyond that.
      streamCall(libp2p, target, { kind: 'drain', nodeId, waitMs }, AbortSignal.timeout(answerWithinMs), (frame) => {
        if (json) console.log(JSON.stringify(frame))
        else if (frame.type === 'moved') console.log(`moved ${describeMove(frame)}`)
      }),
    )
    if (json) return console.log(JSON.stringify({ type: 'result', ...result }))
    const waiting = result.moved.filter((view) => view.how === 'waiting')
    console.log(`${result.nodeId} is draining: ${result.moved.length - waiting.length} of ${result.moved.length} job${result.moved.length === 1 ? '' : 's'} moved off it${result.complete ? '' : `; still waiting: ${waiting.map((view) => view.jobId).join(', ')}`}`)
  })

  addConnectOptions(
    program
      .command('undrain')
      .description('Lift a drain (admin): the node takes new work again')
      .argument('<node>', 'the drained node (a peer id)')
      .option('--json', 'print {"nodeId": ...}'),
  ).action(async (nodeId: string, flags: ConnectFlags & { json?: boolean }) => {
    const result = await askDaemon(flags, { kind: 'undrain', nodeId })
    console.log(flags.json === true ? JSON.stringify(result) : `${result.nodeId} takes new work again (durable on a majority of voters)`)
  })
}
