// The counting job of the checkpoint and migration tests: a shell loop printing 1, 2, 3, ... so a
// restored copy shows where it went on from (no gap, no repeat), and the start every such test makes.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { clientCall } from '../client-connection.ts'
import type { JobDetail } from '../client-wire.ts'
import type { Daemon } from '../daemon-process.ts'
import { poll } from './poll.ts'

export const counterScript = (sleepSeconds = 0.1): string => `i=0; while true; do i=$((i+1)); echo $i; sleep ${sleepSeconds}; done`

/** The numbers a counter printed, in order. */
export const numbers = (text: string): number[] => text.split('\n').filter((line) => /^\d+$/.test(line)).map(Number)

export interface CountingJob {
  jobId: string
  /** The index of the daemon it was placed on. */
  from: number
  /** Its stdout on that node. */
  sourceLog: string
  /** The job as `daemon` knows it. */
  job(daemon: Daemon): Promise<JobDetail>
}

/**
 * Submits `spec` through the first daemon, waits (30 s each) until it is placed and has printed 10
 * numbers on its node; `where` ends the wait's description ('on its node').
 */
export async function startCounting(host: Libp2p, mesh: { daemons: Daemon[]; dataDirs: string[] }, spec: string, where: string): Promise<CountingJob> {
  const { daemons, dataDirs } = mesh
  const { jobId } = await clientCall(host, multiaddr(daemons[0]!.address), { kind: 'submit', spec })
  const job = (daemon: Daemon): Promise<JobDetail> => clientCall(host, multiaddr(daemon.address), { kind: 'job', jobId })
  const placed = await poll(() => job(daemons[0]!), (detail) => detail.node !== null && detail.state === 'assigned', 30_000, 'the job placed')
  const from = daemons.findIndex((daemon) => daemon.peerId === placed.node)
  const sourceLog = join(dataDirs[from]!, 'jobs', jobId, 'stdout.log')
  await poll(() => readFile(sourceLog, 'utf8'), (text) => numbers(text).length >= 10, 30_000, `the counter to count ${where}`)
  return { jobId, from, sourceLog, job }
}
