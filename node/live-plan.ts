// `fabric plan SPEC` on a live mesh: one dry-run auction of a spec against the nodes registered in
// this node's cluster document, each offering its capacity less what the document places on it
// (the leader's accounting), among the nodes this daemon hears on the capacity topic. Every offer
// bids as its node would (placeBatch); nothing is written anywhere.
import {
  PlacementViews,
  demandOf,
  effectiveAssignment,
  forEachJob,
  forEachNode,
  isJobDone,
  runStateOf,
  type Document,
  type NodeId,
  type Resources,
} from '../consensus/index.ts'
import { asJobId, explainJob, placeBatch, type JobExplanation, type JobSpec, type NodeOffer } from '../placement/index.ts'

export interface LivePlan {
  explanation: JobExplanation
  /** Nodes whose offers went into the round. */
  considered: number
  /** Registered nodes left out, and why. */
  leftOut: { nodeId: NodeId; reason: string }[]
}

/** What the document places on each node: every active replica's effective assignment (a copy checkpointed to move holds nothing). */
export function usedByNode(document: Document): Map<NodeId, Resources> {
  const used = new Map<NodeId, Resources>()
  forEachJob(document, (_jobId, job) => {
    if (isJobDone(job)) return
    const assignment = effectiveAssignment(job)
    if (assignment === null) return
    const run = job.runs[assignment.node]
    if (run !== undefined && (runStateOf(run) === 'checkpointed' || runStateOf(run) === 'evicted')) return
    const demand = demandOf(job)
    const total = used.get(assignment.node) ?? { cpuMillis: 0, memoryMiB: 0, diskMiB: 0, gpuCount: 0 }
    used.set(assignment.node, { cpuMillis: total.cpuMillis + demand.cpuMillis, memoryMiB: total.memoryMiB + demand.memoryMiB, diskMiB: total.diskMiB + demand.diskMiB, gpuCount: total.gpuCount + demand.gpuCount })
  })
  return used
}

/** The dry run: offers from the document for the nodes `isAlive` accepts, one placeBatch, the job's explain record. */
export function planOnDocument(document: Document, spec: JobSpec, options: { nowMs: number; isAlive(nodeId: NodeId): boolean; describeSilence(nodeId: NodeId): string }): LivePlan {
  const views = new PlacementViews()
  const leftOut: LivePlan['leftOut'] = []
  const alive = new Set<NodeId>()
  forEachNode(document, (nodeId) => {
    if (options.isAlive(nodeId)) alive.add(nodeId)
    else leftOut.push({ nodeId, reason: options.describeSilence(nodeId) })
  })
  const offers: NodeOffer[] = views.offers(document, usedByNode(document), (nodeId) => alive.has(nodeId))
  const offered = new Set<string>(offers.map((offer) => offer.nodeId))
  for (const nodeId of alive) if (!offered.has(nodeId)) leftOut.push({ nodeId, reason: 'its registered offer cannot be read' })
  const jobId = asJobId(`plan-${spec.name}`)
  const result = placeBatch([{ jobId, spec }], offers, { nowMs: options.nowMs, roundIdPrefix: 'plan', leaderId: 'plan' })
  const round = result.rounds[0]
  const explanation = round === undefined ? undefined : explainJob(round, jobId)
  if (explanation === undefined) throw new Error('assertion: the plan round did not consider the job')
  return { explanation, considered: offers.length, leftOut: leftOut.sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1)) }
}
