// What a Shuttle offers the auction, from its operator's flags and the machine (machine-resources.ts):
// traits, capacity, and unit prices split from one whole-node price per hour (so a job taking half the
// node asks half the price).
import { asNodeId, unitPricesFromInstancePrice, type NodeOffer, type Resources } from '../placement/index.ts'

export interface LocalOfferInit {
  capacity: Resources
  provider: string
  region: string
  azId: string
  country: string
  pricePerHour: number
  spot: boolean
  labels?: Record<string, string>
  /** Nodes of one zone and placement group form an island for tightly-coupled gangs (with EFA, a faster one). */
  placementGroup?: string
  efa?: boolean
  /** The model of the GPUs offered (capacity.gpuCount of them). */
  gpu?: NodeOffer['gpu']
}

/** The node's offer; its id is filled in by the daemon once the identity is loaded. */
export function localOffer(init: LocalOfferInit): NodeOffer {
  return {
    nodeId: asNodeId(''),
    provider: init.provider,
    region: init.region,
    azId: init.azId,
    country: init.country,
    spot: init.spot,
    labels: init.labels ?? {},
    ...(init.placementGroup !== undefined ? { placementGroup: init.placementGroup } : {}),
    efa: init.efa ?? false,
    ...(init.gpu !== undefined && init.capacity.gpuCount > 0 ? { gpu: init.gpu } : {}),
    capacity: init.capacity,
    free: init.capacity,
    prices: unitPricesFromInstancePrice(init.pricePerHour, init.capacity),
    performanceScore: 1,
    reliability: { uptime: 1, interruptions: 0 },
    startDelayMs: 0,
  }
}
