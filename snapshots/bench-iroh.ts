// The iroh row of `fabric bench snapshots`: the same holder processes serve their store over iroh
// too, and in each run (beside the libp2p measurements) this process takes the snapshot's bytes
// over one raw iroh stream, over several raw iroh streams at once, and as a snapshot fetch from
// one holder over iroh. Reported beside the libp2p one-holder fetch of the same run.
import type { PeerInfo } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { IrohSnapshotTransport, irohRawAlpn } from './iroh-transport.ts'
import { receiveRawStreamOn } from './raw-stream.ts'

/** Raw streams opened at once for the parallel baseline. */
export const irohParallelStreams = 4

export interface IrohBenchSamples {
  rawStreamMBps: number[]
  rawParallelStreamsMBps: number[]
  oneHolderMBps: number[]
  /** Per run: iroh one-holder fetch / libp2p one-holder fetch. */
  oneHolderVsLibp2p: number[]
}

export interface IrohBenchResult {
  rawStreamMBps: number
  /** `parallelStreams` raw streams on one connection, each a share of the bytes. */
  rawParallelStreamsMBps: number
  parallelStreams: number
  oneHolderMBps: number
  oneHolderVsLibp2p: number
  samples: IrohBenchSamples
  cpuMsPerMB: { rawStream: { fetcher: number; holders: number }; oneHolder: { fetcher: number; holders: number } }
}

/** The fetching side's iroh endpoint (its own key, as another machine would have). */
export async function irohBenchTransport(): Promise<IrohSnapshotTransport> {
  return IrohSnapshotTransport.create({ privateKey: await generateKeyPair('Ed25519') })
}

/** Receives `total` bytes from `holder` over `streams` raw iroh streams at once; returns the bytes received. */
export async function receiveRawIroh(transport: IrohSnapshotTransport, holder: PeerInfo, total: number, streams: number): Promise<number> {
  const share = Math.ceil(total / streams)
  const received = await Promise.all(Array.from({ length: streams }, async (_, index) => {
    const bytes = Math.min(share, total - index * share)
    return receiveRawStreamOn(await transport.dialProtocol(holder, irohRawAlpn), bytes)
  }))
  return received.reduce((sum, bytes) => sum + bytes, 0)
}
