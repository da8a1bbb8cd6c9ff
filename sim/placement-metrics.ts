// What the simulator measures of placement: how long a replica waits from submission to its first
// start (ground truth, so commit and award delivery are included), what each auction paid against
// the cheapest bid with room in the same round, and how busy the fleet is over time.
import { replicaIdOf, type AuctionSummary, type JobId, type JobSubmission, type Resources } from '../consensus/index.ts'
import type { NodeOffer, UnitPrices } from '../placement/index.ts'

export interface StrategyCost { replicas: number; costPerHour: number; cheapestPerHour: number }

export interface PlacementResult {
  /** Submission to first start, per replica (virtual ms). */
  placementMs: number[]
  /** Replicas the auctions awarded (a re-placement counts again). */
  awards: number
  rounds: number
  byStrategy: Record<string, StrategyCost>
  /** Sampled share of the fleet's CPU (and GPUs) held by running replicas. */
  cpuUtilization: number[]
  gpuUtilization: number[]
}

interface SampledNode { up: boolean; running: ReadonlyMap<JobId, { demand: Resources }> }

export class PlacementMetrics {
  readonly offers: NodeOffer[]
  readonly #submittedAtMs = new Map<JobId, number>()
  readonly #result: PlacementResult = { placementMs: [], awards: 0, rounds: 0, byStrategy: {}, cpuUtilization: [], gpuUtilization: [] }
  readonly #fleetCpu: number
  readonly #fleetGpus: number

  constructor(offers: readonly NodeOffer[]) {
    this.offers = offers.map((offer) => ({ ...offer }))
    this.#fleetCpu = offers.reduce((total, offer) => total + offer.capacity.cpuMillis, 0)
    this.#fleetGpus = offers.reduce((total, offer) => total + offer.capacity.gpuCount, 0)
  }

  get result(): PlacementResult { return this.#result }

  setPrices(index: number, prices: UnitPrices): void {
    this.offers[index] = { ...this.offers[index]!, prices }
  }

  noteSubmitted(job: JobSubmission, nowMs: number): void {
    for (let replica = 0; replica < job.spec.replicas; replica++) this.#submittedAtMs.set(replicaIdOf(job.id, replica, job.spec.replicas), nowMs)
  }

  noteStarted(jobId: JobId, nowMs: number): void {
    const submittedAtMs = this.#submittedAtMs.get(jobId)
    if (submittedAtMs === undefined) return // a restart or re-placement: only the first start is timed
    this.#submittedAtMs.delete(jobId)
    this.#result.placementMs.push(nowMs - submittedAtMs)
  }

  noteAuction(summary: AuctionSummary): void {
    this.#result.rounds++
    this.#result.awards += summary.awards
    for (const [strategy, cost] of Object.entries(summary.byStrategy)) {
      const total = (this.#result.byStrategy[strategy] ??= { replicas: 0, costPerHour: 0, cheapestPerHour: 0 })
      total.replicas += cost.replicas
      total.costPerHour += cost.costPerHour
      total.cheapestPerHour += cost.cheapestPerHour
    }
  }

  sample(nodes: readonly SampledNode[]): void {
    let cpu = 0
    let gpus = 0
    for (const node of nodes) {
      if (!node.up) continue
      for (const run of node.running.values()) {
        cpu += run.demand.cpuMillis
        gpus += run.demand.gpuCount
      }
    }
    this.#result.cpuUtilization.push(this.#fleetCpu > 0 ? cpu / this.#fleetCpu : 0)
    if (this.#fleetGpus > 0) this.#result.gpuUtilization.push(gpus / this.#fleetGpus)
  }
}
