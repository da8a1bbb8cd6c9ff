// The workload generator: jobs arrive as a Poisson process and are submitted through a random
// live node. A few ask for more than any node has, so "unplaceable with a reason" is exercised.
import { asJobId, type JobSubmission } from '../consensus/index.ts'
import type { SeededRandom } from './random.ts'

const shapes = [
  { cpuMillis: 250, memoryMiB: 256 },
  { cpuMillis: 500, memoryMiB: 512 },
  { cpuMillis: 1000, memoryMiB: 1024 },
  { cpuMillis: 2000, memoryMiB: 4096 },
] as const

/** Share of jobs sized beyond every node (they must be reported unplaceable, not lost). */
const oversizedShare = 0.02

export class WorkloadGenerator {
  readonly #random: SeededRandom
  readonly #ratePerSecond: number
  #count = 0

  constructor(random: SeededRandom, ratePerSecond: number) {
    this.#random = random
    this.#ratePerSecond = ratePerSecond
  }

  /** Virtual milliseconds until the next submission. */
  nextGapMs(): number {
    return this.#ratePerSecond > 0 ? this.#random.exponential(1000 / this.#ratePerSecond) : Infinity
  }

  nextJob(): JobSubmission {
    const index = this.#count++
    const oversized = this.#random.chance(oversizedShare)
    const shape = oversized ? { cpuMillis: 64_000, memoryMiB: 1_048_576 } : this.#random.pick(shapes)
    return {
      id: asJobId(`job-${String(index).padStart(5, '0')}`),
      name: `sim-${index}`,
      demand: { ...shape },
      durationMs: this.#random.int(1_000, 10_000),
      command: 'sleep',
    }
  }
}
