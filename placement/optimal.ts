// Offline references for judging placements by cost: a lower bound (every replica on its
// cheapest feasible node, ignoring contention: no placement can cost less) and a
// greedy-with-capacity reference. `costVsOptimal` compares a batch's awards with the bound.
import type { Award, PendingJob } from './auction.ts'
import { jobClassKey, replicasOf } from './auction.ts'
import { CapacityLedger } from './capacity-ledger.ts'
import { exclusionOf } from './constraints.ts'
import { costHorizonHours, defaultCostModel, transferCostPerHour, type CostModel } from './cost-model.ts'
import type { JobId, JobSpec } from './job-spec.ts'
import { askPerHour, type NodeOffer } from './node-offer.ts'

/** Cost per hour (list ask plus transfer) of one replica of `spec` on each offer; NaN where infeasible. */
function replicaCosts(spec: JobSpec, offers: readonly NodeOffer[], model: CostModel): Float64Array {
  const costs = new Float64Array(offers.length)
  const subject = { constraints: spec.constraints, demand: spec.resources, maxPricePerHour: spec.maxPricePerHour }
  const horizon = costHorizonHours(spec.timeoutMs, model)
  offers.forEach((offer, index) => {
    const ask = askPerHour(offer.prices, spec.resources)
    costs[index] = exclusionOf(subject, offer, offer.capacity, ask) === undefined ? ask + transferCostPerHour(spec.data, offer, horizon, model) : NaN
  })
  return costs
}

export interface LowerBound {
  /** Sum over jobs with a feasible node of replicas x cheapest feasible cost per hour. */
  totalPerHour: number
  perJobPerHour: Map<JobId, number>
  infeasible: JobId[]
}

/** A valid lower bound on total cost per hour: contention can only make placements dearer. */
export function costLowerBound(jobs: readonly PendingJob[], offers: readonly NodeOffer[], model: CostModel = defaultCostModel): LowerBound {
  const cheapestByClass = new Map<string, number>()
  const bound: LowerBound = { totalPerHour: 0, perJobPerHour: new Map(), infeasible: [] }
  for (const job of jobs) {
    const key = jobClassKey(job.spec)
    let cheapest = cheapestByClass.get(key)
    if (cheapest === undefined) {
      cheapest = Infinity
      for (const cost of replicaCosts(job.spec, offers, model)) if (cost < cheapest) cheapest = cost
      cheapestByClass.set(key, cheapest)
    }
    if (cheapest === Infinity) {
      bound.infeasible.push(job.jobId)
      continue
    }
    const cost = cheapest * replicasOf(job).length
    bound.perJobPerHour.set(job.jobId, cost)
    bound.totalPerHour += cost
  }
  return bound
}

export interface GreedyReference {
  totalPerHour: number
  placed: number
  unplaced: number
}

/** Biggest jobs first, each replica on the cheapest node with room (no gangs, no spreading). */
export function greedyReference(jobs: readonly PendingJob[], offers: readonly NodeOffer[], model: CostModel = defaultCostModel): GreedyReference {
  const ledger = new CapacityLedger(offers.map((offer) => offer.free))
  const orderByClass = new Map<string, { order: Int32Array; costs: Float64Array; head: number }>()
  const sorted = [...jobs].sort((a, b) => b.spec.resources.gpuCount - a.spec.resources.gpuCount || b.spec.resources.cpuMillis - a.spec.resources.cpuMillis)
  const reference: GreedyReference = { totalPerHour: 0, placed: 0, unplaced: 0 }
  for (const job of sorted) {
    const key = jobClassKey(job.spec)
    let entry = orderByClass.get(key)
    if (!entry) {
      const costs = replicaCosts(job.spec, offers, model)
      const feasible = [...costs.keys()].filter((index) => !Number.isNaN(costs[index]!))
      entry = { order: Int32Array.from(feasible).sort((a, b) => costs[a]! - costs[b]! || a - b), costs, head: 0 }
      orderByClass.set(key, entry)
    }
    let cost = 0
    let placed = true
    for (let replica = 0; replica < replicasOf(job).length; replica++) {
      while (entry.head < entry.order.length && !ledger.fits(entry.order[entry.head]!, job.spec.resources)) entry.head++
      if (entry.head >= entry.order.length) {
        placed = false
        break
      }
      const node = entry.order[entry.head]!
      ledger.take(node, job.spec.resources)
      cost += entry.costs[node]!
    }
    reference.totalPerHour += cost
    if (placed) reference.placed++
    else reference.unplaced++
  }
  return reference
}

export interface CostComparison {
  /** Sum of the winners' asks plus transfer, for fully placed jobs. */
  awardedCostPerHour: number
  /** What the winners are paid (second price) plus transfer, for the same jobs. */
  paidPerHour: number
  lowerBoundPerHour: number
  /** awardedCostPerHour / lowerBoundPerHour: allocation quality (1 = optimal). */
  costVsOptimal: number
  /** paidPerHour / lowerBoundPerHour: includes the second-price premium. */
  paidVsOptimal: number
  jobsCompared: number
}

/** Compares awards with the lower bound over the jobs that were fully placed. */
export function costVsOptimal(jobs: readonly PendingJob[], awards: readonly Award[], offers: readonly NodeOffer[], model: CostModel = defaultCostModel): CostComparison {
  const replicasAwarded = new Map<JobId, number>()
  for (const award of awards) replicasAwarded.set(award.jobId, (replicasAwarded.get(award.jobId) ?? 0) + 1)
  const complete = jobs.filter((job) => replicasAwarded.get(job.jobId) === replicasOf(job).length)
  const completeIds = new Set(complete.map((job) => job.jobId))
  let awardedCostPerHour = 0
  let paidPerHour = 0
  for (const award of awards) {
    if (!completeIds.has(award.jobId)) continue
    awardedCostPerHour += award.costPerHour
    paidPerHour += award.pricePerHour + (award.costPerHour - award.askPerHour)
  }
  const bound = costLowerBound(complete, offers, model).totalPerHour
  return {
    awardedCostPerHour,
    paidPerHour,
    lowerBoundPerHour: bound,
    costVsOptimal: bound > 0 ? awardedCostPerHour / bound : 1,
    paidVsOptimal: bound > 0 ? paidPerHour / bound : 1,
    jobsCompared: complete.length,
  }
}
