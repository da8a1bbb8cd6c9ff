// The leader's placement rule until the auction (placement/) is wired in: spread each job onto the
// live node with the most free CPU that fits, accounting capacity across the whole batch.
import type { JobId, NodeId, Resources } from './types.ts'

export interface PlacementCandidate { id: NodeId; capacity: Resources; used: Resources; alive: boolean }
export interface PendingJob { jobId: JobId; demand: Resources }
export interface PlacementResult {
  assignments: { jobId: JobId; nodeId: NodeId }[]
  /** Jobs no registered node could ever run (too big for every node), with the reason. */
  unplaceable: { jobId: JobId; reason: string }[]
  /** Jobs that fit some node but none has room now: they stay pending. */
  waiting: number
}

const fits = (demand: Resources, free: Resources): boolean => demand.cpuMillis <= free.cpuMillis && demand.memoryMiB <= free.memoryMiB

export function placeSpread(pending: readonly PendingJob[], candidates: readonly PlacementCandidate[]): PlacementResult {
  const free = candidates.map((node) => ({
    id: node.id,
    alive: node.alive,
    capacity: node.capacity,
    free: { cpuMillis: node.capacity.cpuMillis - node.used.cpuMillis, memoryMiB: node.capacity.memoryMiB - node.used.memoryMiB },
  }))
  const result: PlacementResult = { assignments: [], unplaceable: [], waiting: 0 }
  for (const job of pending) {
    let best: (typeof free)[number] | undefined
    let everFits = false
    for (const node of free) {
      if (fits(job.demand, node.capacity)) everFits = true
      if (!node.alive || !fits(job.demand, node.free)) continue
      if (best === undefined || node.free.cpuMillis > best.free.cpuMillis || (node.free.cpuMillis === best.free.cpuMillis && node.id < best.id)) best = node
    }
    if (best !== undefined) {
      best.free.cpuMillis -= job.demand.cpuMillis
      best.free.memoryMiB -= job.demand.memoryMiB
      result.assignments.push({ jobId: job.jobId, nodeId: best.id })
    } else if (!everFits) {
      result.unplaceable.push({ jobId: job.jobId, reason: `no registered node has ${job.demand.cpuMillis}m CPU and ${job.demand.memoryMiB} MiB memory` })
    } else {
      result.waiting++
    }
  }
  return result
}
