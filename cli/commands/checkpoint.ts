// `fabric checkpoint ID`: the job's running replicas are checkpointed now, each by its runner (CRIU
// dump, packed into chunks, replicated to peers in other failure domains); a progress bar on stderr
// follows each phase, and once the document records the snapshot its CID, size, chunks and holders
// are printed. `fabric snapshots ID`: the snapshots the document records for the job.
import type { Command } from 'commander'
import type { SnapshotView } from '../../node/client-wire.ts'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { ProgressBar, formatBytes } from '../progress-bar.ts'
import { ago, renderTable, shortId } from '../table.ts'

function snapshotTable(snapshots: readonly SnapshotView[], nowMs: number): string {
  const rows = snapshots.map((snapshot) => [
    snapshot.replica,
    shortId(snapshot.node),
    snapshot.cid,
    ago(snapshot.atMs, nowMs),
    snapshot.sizeBytes === null ? '-' : formatBytes(snapshot.sizeBytes),
    snapshot.chunks === null ? '-' : String(snapshot.chunks),
    snapshot.holders.length === 0 ? '-' : snapshot.holders.map(shortId).join(','),
  ])
  return renderTable(['REPLICA', 'NODE', 'CID', 'TAKEN', 'SIZE', 'CHUNKS', 'HOLDERS'], rows)
}

export function registerCheckpoint(program: Command): void {
  addConnectOptions(
    program
      .command('checkpoint')
      .description("Checkpoint a job's running replicas now (they keep running); prints each snapshot's CID, size, chunks and holders once recorded")
      .argument('<id>', 'job id (every running replica is checkpointed)')
      .option('--json', 'progress events and then the result as JSON lines on stdout (no progress bar)'),
  ).action(async (jobId: string, flags: ConnectFlags & { json?: boolean }) => {
    const [{ withDaemon }, { streamCall }] = await Promise.all([import('../daemon-client.ts'), import('../stream-call.ts')])
    const json = flags.json === true
    const bar = new ProgressBar()
    const result = await withDaemon(flags, ({ libp2p, target, signal }) =>
      streamCall(libp2p, target, { kind: 'checkpoint', jobId }, signal, (frame) => {
        if (json) console.log(JSON.stringify(frame))
        else if (frame.type === 'progress') bar.update(frame)
      }).finally(() => bar.done()),
    )
    if (json) return console.log(JSON.stringify({ type: 'result', ...result }))
    console.log(`checkpointed ${result.jobId}: ${result.snapshots.length} snapshot${result.snapshots.length === 1 ? '' : 's'} recorded`)
    console.log(snapshotTable(result.snapshots, Date.now()))
  })

  addConnectOptions(
    program
      .command('snapshots')
      .description("List a job's snapshots: per replica and node that took one, its CID, when, size, chunks and the peers holding replicas")
      .argument('<id>', 'job id')
      .option('--json', 'print the listing as JSON'),
  ).action(async (jobId: string, flags: ConnectFlags & { json?: boolean }) => {
    const result = await askDaemon(flags, { kind: 'snapshots', jobId })
    if (flags.json === true) return console.log(JSON.stringify(result, null, 2))
    if (result.snapshots.length === 0) return console.log(`job ${result.jobId} has no snapshot yet (\`fabric checkpoint ${result.jobId}\` takes one)`)
    console.log(snapshotTable(result.snapshots, Date.now()))
  })
}
