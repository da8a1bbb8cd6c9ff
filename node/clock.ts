// The daemon's clock and randomness: the only place in Fabric that reads real time or draws real
// random numbers for the consensus core (which takes both as inputs). The simulator has its own.
import { getRandomValues } from 'node:crypto'
import type { RandomSource } from '../consensus/index.ts'

export interface Clock {
  /** Milliseconds; never goes backwards within one process. */
  nowMs(): number
}

/**
 * Wall-anchored but monotonic: the process start time on the wall clock plus a monotonic offset.
 * Wall-anchored because the core stamps times into the document (submissions, runs) that other
 * peers read; monotonic because a clock stepping backwards would stretch timers and leases. (The
 * sync channel's epoch is the boot's incarnation, not a time: consensus/document-replica.ts.)
 */
export const systemClock: Clock = {
  nowMs: () => Math.floor(performance.timeOrigin + performance.now()),
}

/** Election jitter from the operating system's CSPRNG (peers must not share a seed). */
export const systemRandom: RandomSource = {
  next: () => getRandomValues(new Uint32Array(1))[0]! / 2 ** 32,
}
