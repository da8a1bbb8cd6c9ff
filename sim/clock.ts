// A node's local clock in the simulator: a fixed offset plus a constant drift against the
// simulated global time, so timeouts and leases see the skew real machines have.
// local = offsetMs + realMs * (1 + driftRate).
import assert from 'node:assert/strict'
import type { SeededRandom } from './random.ts'

export interface DriftingClockOptions {
  /** Fractional rate error: 1e-4 means the local clock gains 0.1 ms per real second. */
  driftRate: number
  offsetMs: number
}

export class DriftingClock {
  readonly driftRate: number
  readonly offsetMs: number

  constructor(options: DriftingClockOptions) {
    // A rate at or below -1 would stop or reverse local time.
    assert.ok(Math.abs(options.driftRate) < 1, `driftRate must be in (-1, 1), got ${options.driftRate}`)
    assert.ok(Number.isFinite(options.offsetMs), 'offsetMs must be finite')
    this.driftRate = options.driftRate
    this.offsetMs = options.offsetMs
  }

  localMs(realMs: number): number {
    return this.offsetMs + realMs * (1 + this.driftRate)
  }

  /** Exact inverse of `localMs`: the real time at which this clock reads `localMs`. */
  realMsAt(localMs: number): number {
    return (localMs - this.offsetMs) / (1 + this.driftRate)
  }
}

/** A clock with drift uniform in [-maxDriftRate, +maxDriftRate] and offset uniform in [0, maxOffsetMs]. */
export function drawClock(random: SeededRandom, maxDriftRate: number, maxOffsetMs: number): DriftingClock {
  assert.ok(maxDriftRate >= 0 && maxOffsetMs >= 0, 'clock bounds must be >= 0')
  const driftRate = (random.next() * 2 - 1) * maxDriftRate
  const offsetMs = random.next() * maxOffsetMs
  return new DriftingClock({ driftRate, offsetMs })
}
