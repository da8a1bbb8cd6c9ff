// A migration may name where it goes: one provider and/or one region (`fabric migrate ID --region R`).
// The leader places the moving replica under its job's own constraints with these added (so the
// auction's explain table names the nodes the move excluded), and the request is refused up front
// when the job's constraints forbid that place or no registered node other than its runners is there.
import { forEachNode, isDraining, readText, type Document } from './cluster-document.ts'
import type { MoveConstraints, NodeId } from './types.ts'

export const isUnconstrained = (where: MoveConstraints): boolean => where.provider === undefined && where.region === undefined

const describe = (where: MoveConstraints): string =>
  [where.provider === undefined ? null : `provider ${where.provider}`, where.region === undefined ? null : `region ${where.region}`].filter((part) => part !== null).join(' and ')

function readJson(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null
  } catch {
    return null
  }
}

/** The job's spec text with the move's provider and region added to its constraints (unchanged when the move has none). */
export function constrainSpecText(specText: string, where: MoveConstraints): string {
  if (isUnconstrained(where)) return specText
  const spec = readJson(specText)
  if (spec === null) return specText // unreadable: the auction records it as such
  const constraints = { ...(readJson(JSON.stringify(spec.constraints ?? {})) ?? {}) }
  if (where.provider !== undefined) constraints.providers = [where.provider]
  if (where.region !== undefined) constraints.regions = [where.region]
  return JSON.stringify({ ...spec, constraints })
}

/**
 * Why the move cannot go where asked (null: it can): the job's own constraints exclude that place,
 * or no registered node there could take it (besides `from`, the nodes it runs on, and draining ones).
 */
export function moveRefusal(document: Document, jobId: string, specText: string, where: MoveConstraints, from: readonly NodeId[]): string | null {
  if (isUnconstrained(where)) return null
  const constraints = readJson(specText)?.constraints as { providers?: unknown; regions?: unknown } | undefined
  const allows = (list: unknown, value: string): boolean => !Array.isArray(list) || list.includes(value)
  if (where.provider !== undefined && !allows(constraints?.providers, where.provider)) return `job ${jobId} may only run on providers [${(constraints!.providers as string[]).join(', ')}]; ${where.provider} is not among them`
  if (where.region !== undefined && !allows(constraints?.regions, where.region)) return `job ${jobId} may only run in regions [${(constraints!.regions as string[]).join(', ')}]; ${where.region} is not among them`
  const places = new Set<string>()
  let matching = 0
  forEachNode(document, (nodeId, node) => {
    const offer = readJson(readText(node.offer))
    const provider = typeof offer?.provider === 'string' ? offer.provider : ''
    const region = typeof offer?.region === 'string' ? offer.region : ''
    places.add(`${provider}/${region}`)
    if (from.includes(nodeId) || isDraining(document, nodeId)) return
    if ((where.provider === undefined || provider === where.provider) && (where.region === undefined || region === where.region)) matching++
  })
  if (matching > 0) return null
  return `no registered node other than the job's own is in ${describe(where)} (registered provider/region: ${[...places].sort().join(', ') || 'none'})`
}
