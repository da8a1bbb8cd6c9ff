// The workload generator: jobs arrive as a Poisson process and are submitted through a random live
// node. Each draws a template (a job spec) from the workload in proportion to its rate (or weight);
// the built-in workload mixes four shapes, and a few jobs ask for more than any node has, so
// "unplaceable with a reason" is exercised. Flaky jobs have retries: the world makes some of their
// runs fail (world.ts), so retries and final failures are exercised too.
import { asJobId, type JobSubmission } from '../consensus/index.ts'
import { validateJobSpec, type JobSpec, type Workload } from '../placement/index.ts'
import type { SeededRandom } from './random.ts'

function spec(document: Record<string, unknown>): JobSpec {
  const result = validateJobSpec({ command: ['sleep'], ...document })
  if (!result.ok) throw new Error(`assertion: built-in job spec invalid: ${JSON.stringify(result.errors)}`)
  return result.spec
}

/** Share of the built-in workload sized beyond every node (it must be reported unplaceable, not lost). */
const oversizedShare = 0.02

/** Share of the built-in workload that may fail and is retried. */
const flakyShare = 0.1
const shapeShare = (1 - oversizedShare - flakyShare) / 4

/** The built-in workload: four lowest-cost shapes, a flaky job with retries, and the oversized job. */
export const builtInWorkload: Workload = {
  name: 'built-in',
  templates: [
    { name: 'small', weight: shapeShare, spec: spec({ name: 'small', resources: { cpu: '250m', memory: '256Mi' } }) },
    { name: 'medium', weight: shapeShare, spec: spec({ name: 'medium', resources: { cpu: '500m', memory: '512Mi' } }) },
    { name: 'large', weight: shapeShare, spec: spec({ name: 'large', resources: { cpu: 1, memory: '1Gi' } }) },
    { name: 'xlarge', weight: shapeShare, spec: spec({ name: 'xlarge', resources: { cpu: 2, memory: '4Gi' } }) },
    { name: 'flaky', weight: flakyShare, spec: spec({ name: 'flaky', resources: { cpu: '250m', memory: '256Mi' }, retries: 2 }) },
    { name: 'oversized', weight: oversizedShare, spec: spec({ name: 'oversized', resources: { cpu: 4096, memory: '64Ti' } }) },
  ],
}

export class WorkloadGenerator {
  readonly #random: SeededRandom
  readonly #ratePerSecond: number
  readonly #workload: Workload
  readonly #cumulative: number[]
  #count = 0

  constructor(random: SeededRandom, ratePerSecond: number, workload: Workload = builtInWorkload) {
    this.#random = random
    this.#ratePerSecond = ratePerSecond
    this.#workload = workload
    let total = 0
    this.#cumulative = workload.templates.map((template) => (total += template.ratePerSecond ?? template.weight))
  }

  /** Virtual milliseconds until the next submission. */
  nextGapMs(): number {
    return this.#ratePerSecond > 0 ? this.#random.exponential(1000 / this.#ratePerSecond) : Infinity
  }

  nextJob(): JobSubmission {
    const index = this.#count++
    const draw = this.#random.next() * this.#cumulative.at(-1)!
    const slot = Math.max(0, this.#cumulative.findIndex((bound) => draw < bound))
    const template = this.#workload.templates[slot]!
    return { id: asJobId(`job-${String(index).padStart(5, '0')}`), spec: template.spec, durationMs: this.#random.int(1_000, 10_000) }
  }
}
