// What the daemon reads from the document for snapshots: a job's checkpoint policy (how many
// snapshots to keep, how many peers hold a replica) and which peers to ask to hold one (live nodes
// in other failure domains first: another provider, then another region, then another AZ-ID).
import { forEachNode, jobRecord, readText, type Document, type JobId, type NodeId } from '../consensus/index.ts'
import type { NodeOffer } from '../placement/index.ts'

/** Replicas when the spec's checkpoint policy does not say. */
export const defaultSnapshotReplicas = 1
export const defaultSnapshotKeep = 3

export function checkpointPolicyOf(document: Document, jobId: JobId): { keep: number; replicas: number } {
  const job = jobRecord(document, jobId)
  try {
    const checkpoint = (JSON.parse(readText(job?.spec)) as { checkpoint?: { keep?: unknown; replicas?: unknown } }).checkpoint
    const keep = typeof checkpoint?.keep === 'number' ? checkpoint.keep : defaultSnapshotKeep
    const replicas = typeof checkpoint?.replicas === 'number' ? checkpoint.replicas : defaultSnapshotReplicas
    return { keep, replicas }
  } catch {
    return { keep: defaultSnapshotKeep, replicas: defaultSnapshotReplicas }
  }
}

function offerOf(text: string): Pick<NodeOffer, 'provider' | 'region' | 'azId'> | null {
  try {
    return JSON.parse(text) as NodeOffer
  } catch {
    return null
  }
}

export function replicaCandidates(document: Document, self: NodeId, isAlive: (nodeId: NodeId) => boolean): NodeId[] {
  let own: Pick<NodeOffer, 'provider' | 'region' | 'azId'> | null = null
  const others: { id: NodeId; offer: Pick<NodeOffer, 'provider' | 'region' | 'azId'> | null }[] = []
  forEachNode(document, (nodeId, node) => {
    const offer = offerOf(readText(node.offer))
    if (nodeId === self) own = offer
    else if (isAlive(nodeId)) others.push({ id: nodeId, offer })
  })
  const mine = own as Pick<NodeOffer, 'provider' | 'region' | 'azId'> | null
  const distance = (offer: Pick<NodeOffer, 'provider' | 'region' | 'azId'> | null): number => {
    if (offer === null || mine === null) return 0
    return offer.provider !== mine.provider ? 3 : offer.region !== mine.region ? 2 : offer.azId !== mine.azId ? 1 : 0
  }
  return others.sort((a, b) => distance(b.offer) - distance(a.offer) || (a.id < b.id ? -1 : 1)).map((other) => other.id)
}
