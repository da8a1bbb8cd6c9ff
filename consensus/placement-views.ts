// The document stores job specs and node offers as JSON text; the leader reads them every round.
// Parsed values are cached by their text (identical specs share one object, so the auction groups
// their jobs into one class without re-reading them), and text that does not hold a usable value
// reads as null: a bad record is refused, never trusted.
import type { JobSpec, NodeOffer } from '../placement/index.ts'
import { forEachNode, readText, type Document } from './cluster-document.ts'
import type { NodeId, Resources } from './types.ts'

/** Distinct texts remembered per cache; past this the cache starts over (it only saves parsing). */
const maxCached = 4_096

const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

function readJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function isResources(value: unknown): boolean {
  return isRecord(value) && isNumber(value.cpuMillis) && isNumber(value.memoryMiB) && isNumber(value.diskMiB) && isNumber(value.gpuCount)
}

/** The shape the auction relies on (the submitting node validated the spec in full). */
function asJobSpec(value: unknown): JobSpec | null {
  if (!isRecord(value) || !isRecord(value.resources) || !isResources(value.resources)) return null
  const resources = value.resources
  if (!Array.isArray(resources.gpuModels) || !isNumber(resources.gpuMinMemoryMiB)) return null
  if (!Number.isInteger(value.replicas) || (value.replicas as number) < 1 || typeof value.strategy !== 'string' || typeof value.intent !== 'string') return null
  if (!isRecord(value.constraints) || !isRecord(value.constraints.labels) || typeof value.constraints.spotAllowed !== 'boolean') return null
  if (!Array.isArray(value.data) || !isNumber(value.priority)) return null
  return value as unknown as JobSpec
}

function asNodeOffer(value: unknown): NodeOffer | null {
  if (!isRecord(value) || !isResources(value.capacity) || !isRecord(value.prices) || !isRecord(value.reliability) || !isRecord(value.labels)) return null
  const prices = value.prices
  if (!isNumber(prices.perCpuHour) || !isNumber(prices.perMemoryGiBHour) || !isNumber(prices.perGpuHour)) return null
  for (const field of ['provider', 'region', 'azId', 'country'] as const) if (typeof value[field] !== 'string') return null
  if (!isNumber(value.performanceScore) || !isNumber(value.startDelayMs) || typeof value.spot !== 'boolean') return null
  return value as unknown as NodeOffer
}

class TextCache<T> {
  readonly #entries = new Map<string, T | null>()
  readonly #read: (text: string) => T | null

  constructor(read: (text: string) => T | null) {
    this.#read = read
  }

  get(text: string): T | null {
    let value = this.#entries.get(text)
    if (value === undefined) {
      if (this.#entries.size >= maxCached) this.#entries.clear()
      value = this.#read(text)
      this.#entries.set(text, value)
    }
    return value
  }
}

export class PlacementViews {
  readonly #specs = new TextCache((text) => asJobSpec(readJson(text)))
  readonly #offers = new TextCache((text) => asNodeOffer(readJson(text)))

  specOf(text: string): JobSpec | null {
    return this.#specs.get(text)
  }

  /** The live nodes' offers, free resources = capacity less what the document places there. */
  offers(document: Document, used: ReadonlyMap<NodeId, Resources>, isAlive: (nodeId: NodeId) => boolean): NodeOffer[] {
    const offers: NodeOffer[] = []
    forEachNode(document, (nodeId, node) => {
      if (!isAlive(nodeId)) return
      const offer = this.#offers.get(readText(node.offer))
      if (offer === null || offer.nodeId !== nodeId) return
      const held = used.get(nodeId)
      const capacity = offer.capacity
      const free = held === undefined
        ? capacity
        : {
            cpuMillis: Math.max(0, capacity.cpuMillis - held.cpuMillis),
            memoryMiB: Math.max(0, capacity.memoryMiB - held.memoryMiB),
            diskMiB: Math.max(0, capacity.diskMiB - held.diskMiB),
            gpuCount: Math.max(0, capacity.gpuCount - held.gpuCount),
          }
      offers.push({ ...offer, free })
    })
    return offers
  }
}
