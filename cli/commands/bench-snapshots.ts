// `fabric bench snapshots`: snapshot transfer over real libp2p on loopback (holders in child
// processes): one holder against a raw stream, two holders against one, and the bytes a second
// checkpoint of a barely changed memory image costs. Prints one JSON object (the last line).
import type { Command } from 'commander'
import type { SnapshotTransportName } from '../../snapshots/transport.ts'
import { UserError } from '../user-error.ts'
import { positiveInteger } from '../parse.ts'

export function registerBenchSnapshots(bench: Command): void {
  bench
    .command('snapshots')
    .description('Transfer a synthetic CRIU memory image over /fabric/snapshots/1.0.0 on loopback; compares with a raw libp2p stream')
    .option('--memory-mib <count>', 'size of the synthetic memory image (pages-1.img) in MiB', '100')
    .option('--changed-percent <percent>', 'share of pages dirtied for the second checkpoint', '2')
    .option('--runs <count>', 'interleaved timing runs (medians are reported)', '3')
    .option('--work-dir <path>', 'where the images and stores are written (removed afterwards)')
    .option('--transport <name>', 'libp2p, or iroh to measure the same holder over iroh beside libp2p in every run', 'libp2p')
    .option('--link-mbps <megabytes>', 'pace each holder\'s sending to this many MB/s (megabytes), as if each had its own link of that speed; default unpaced')
    .option('--json', 'print only the JSON object')
    .action(async (options: { memoryMib: string; changedPercent: string; runs: string; workDir?: string; transport: string; linkMbps?: string; json?: boolean }) => {
      const [{ benchSnapshots }, { snapshotTransportNames }] = await Promise.all([import('../../snapshots/index.ts'), import('../../snapshots/transport.ts')])
      if (!snapshotTransportNames.includes(options.transport as SnapshotTransportName)) {
        throw new UserError(`--transport must be one of ${snapshotTransportNames.join(', ')}, got "${options.transport}"`)
      }
      const memoryMib = positiveInteger('--memory-mib', options.memoryMib)
      const runs = positiveInteger('--runs', options.runs)
      const changedPercent = Number(options.changedPercent)
      if (!Number.isFinite(changedPercent) || changedPercent <= 0 || changedPercent > 100) {
        throw new UserError(`--changed-percent must be a number in (0, 100], got "${options.changedPercent}"`)
      }
      const linkMbps = options.linkMbps === undefined ? null : Number(options.linkMbps)
      if (linkMbps !== null && !(Number.isFinite(linkMbps) && linkMbps > 0)) {
        throw new UserError(`--link-mbps must be a positive number of megabytes per second, got "${options.linkMbps}"`)
      }
      const result = await benchSnapshots({
        memoryBytes: memoryMib * 1024 * 1024,
        changedFraction: changedPercent / 100,
        runs,
        workDirectory: options.workDir,
        transport: options.transport as SnapshotTransportName,
        linkMbps,
        nowMs: () => performance.now(),
        onStep: options.json ? undefined : (message) => console.error(message),
      })
      if (!options.json) {
        if (result.linkMbps !== null) console.log(`each holder paced to ${result.linkMbps} MB/s`)
        console.log(`one holder ${result.oneHolderMBps} MB/s vs raw stream ${result.rawStreamMBps} MB/s (${Math.round(result.oneHolderVsRaw * 100)}%, goal 90%)`)
        console.log(`two holders ${result.twoHoldersMBps} MB/s (${result.twoHoldersVsOne}x one holder, goal 1.6x)`)
        const cpu = result.cpuMsPerMB
        console.log(`CPU ms per MB (fetcher / holders): raw stream ${cpu.rawStream.fetcher} / ${cpu.rawStream.holders}, one holder ${cpu.oneHolder.fetcher} / ${cpu.oneHolder.holders}, two holders ${cpu.twoHolders.fetcher} / ${cpu.twoHolders.holders} on ${result.machine.cores} cores`)
        console.log(`chunk store alone: write ${result.storeWriteMBps} MB/s (${result.storeWriteCpuMsPerMB} CPU ms/MB), read ${result.storeReadMBps} MB/s (${result.storeReadCpuMsPerMB} CPU ms/MB)`)
        if (result.iroh !== null) {
          const iroh = result.iroh
          console.log(`iroh: one holder ${iroh.oneHolderMBps} MB/s (${iroh.oneHolderVsLibp2p}x libp2p), raw stream ${iroh.rawStreamMBps} MB/s, ${iroh.parallelStreams} raw streams ${iroh.rawParallelStreamsMBps} MB/s; CPU ms per MB (fetcher / holder): raw ${iroh.cpuMsPerMB.rawStream.fetcher} / ${iroh.cpuMsPerMB.rawStream.holders}, fetch ${iroh.cpuMsPerMB.oneHolder.fetcher} / ${iroh.cpuMsPerMB.oneHolder.holders}`)
        }
        console.log(`second checkpoint: ${Math.round(result.incremental.scattered.ratio * 1000) / 10}% of the first (scattered pages), ${Math.round(result.incremental.clustered.ratio * 1000) / 10}% (clustered), goal <= 10%`)
      }
      console.log(JSON.stringify(result))
    })
}
