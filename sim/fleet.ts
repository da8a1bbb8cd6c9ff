// The simulated fleet: heterogeneous offers (hyperscaler spot and on-demand in several regions and
// AZ-IDs, a GPU cloud with placement groups, decentralized hosts that set their own prices), either
// generated for `--nodes N` or read from a `--fleet FILE` (placement/fleet.ts), and renamed to the
// simulator's node ids. Spot prices move over time (SpotMarket).
import { asNodeId, unitPricesFromInstancePrice, type NodeOffer, type Resources, type UnitPrices } from '../placement/index.ts'
import type { SeededRandom } from './random.ts'

const GiB = 1024
const shape = (cpus: number, memoryGiB: number, diskGiB: number, gpuCount = 0): Resources => ({ cpuMillis: cpus * 1000, memoryMiB: memoryGiB * GiB, diskMiB: diskGiB * GiB, gpuCount })

interface Template {
  provider: string
  region: string
  azIds: readonly string[]
  country: string
  capacity: Resources
  /** Whole-node price per hour, split into unit prices; or the host's own unit prices. */
  pricePerHour?: number
  prices?: UnitPrices
  spot?: boolean
  performanceScore?: number
  reliability?: { uptime: number; interruptions: number }
  gpu?: { model: string; memoryMiB: number }
  placementGroup?: string
  efa?: boolean
  startDelayMs?: number
}

const standard = shape(8, 32, 200)
const host = shape(16, 64, 1000)
const spotReliability = { uptime: 0.95, interruptions: 3 }

/**
 * One block of 25 nodes, ordered so that any prefix is mixed (small test meshes see several kinds).
 * Larger meshes repeat the block; each repeat rotates through the template's AZ-IDs.
 */
const block: readonly Template[] = [
  { provider: 'aws', region: 'us-east-1', azIds: ['use1-az1', 'use1-az2'], country: 'US', capacity: standard, pricePerHour: 0.152, spot: true, reliability: spotReliability, startDelayMs: 60_000 },
  { provider: 'nosana', region: 'de-fra', azIds: ['nos-fra-1'], country: 'DE', capacity: host, prices: { perCpuHour: 0.012, perMemoryGiBHour: 0.0015, perGpuHour: 0 }, performanceScore: 0.9, reliability: { uptime: 0.98, interruptions: 1 } },
  { provider: 'gcp', region: 'us-central1', azIds: ['us-central1-a', 'us-central1-b'], country: 'US', capacity: standard, pricePerHour: 0.097, spot: true, performanceScore: 1.05, reliability: { uptime: 0.93, interruptions: 5 }, startDelayMs: 60_000 },
  { provider: 'aws', region: 'us-east-1', azIds: ['use1-az1', 'use1-az2'], country: 'US', capacity: standard, pricePerHour: 0.384 },
  { provider: 'aws', region: 'eu-west-1', azIds: ['euw1-az1', 'euw1-az2', 'euw1-az3'], country: 'IE', capacity: standard, pricePerHour: 0.428 },
  { provider: 'lambda', region: 'us-west-1', azIds: ['lam-usw1-a'], country: 'US', capacity: shape(208, 1800, 20_000, 8), pricePerHour: 23.92, gpu: { model: 'H100', memoryMiB: 80 * GiB }, placementGroup: 'lam-cluster-1', performanceScore: 2, startDelayMs: 90_000 },
  { provider: 'nosana', region: 'us-nyc', azIds: ['nos-nyc-1'], country: 'US', capacity: host, prices: { perCpuHour: 0.013, perMemoryGiBHour: 0.0016, perGpuHour: 0 }, performanceScore: 0.95, reliability: { uptime: 0.97, interruptions: 2 } },
  { provider: 'gcp', region: 'europe-west4', azIds: ['europe-west4-a', 'europe-west4-b'], country: 'NL', capacity: standard, pricePerHour: 0.42, performanceScore: 1.05 },
  { provider: 'aws', region: 'eu-west-1', azIds: ['euw1-az1', 'euw1-az2'], country: 'IE', capacity: standard, pricePerHour: 0.171, spot: true, reliability: spotReliability, startDelayMs: 60_000 },
  { provider: 'azure', region: 'westeurope', azIds: ['weu-az1', 'weu-az2', 'weu-az3'], country: 'NL', capacity: standard, pricePerHour: 0.384 },
  { provider: 'lambda', region: 'us-west-1', azIds: ['lam-usw1-a'], country: 'US', capacity: shape(208, 1800, 20_000, 8), pricePerHour: 23.92, gpu: { model: 'H100', memoryMiB: 80 * GiB }, placementGroup: 'lam-cluster-1', performanceScore: 2, startDelayMs: 90_000 },
  { provider: 'nosana', region: 'fi-hel', azIds: ['nos-hel-1'], country: 'FI', capacity: host, prices: { perCpuHour: 0.011, perMemoryGiBHour: 0.0014, perGpuHour: 0 }, performanceScore: 0.9, reliability: { uptime: 0.97, interruptions: 2 } },
  { provider: 'gcp', region: 'us-central1', azIds: ['us-central1-a', 'us-central1-b'], country: 'US', capacity: standard, pricePerHour: 0.389, performanceScore: 1.05 },
  { provider: 'aws', region: 'us-east-1', azIds: ['use1-az1', 'use1-az2'], country: 'US', capacity: standard, pricePerHour: 0.152, spot: true, reliability: spotReliability, startDelayMs: 60_000 },
  { provider: 'aws', region: 'eu-central-1', azIds: ['euc1-az1', 'euc1-az2', 'euc1-az3'], country: 'DE', capacity: standard, pricePerHour: 0.46 },
  { provider: 'nosana', region: 'de-fra', azIds: ['nos-fra-1'], country: 'DE', capacity: host, prices: { perCpuHour: 0.012, perMemoryGiBHour: 0.0015, perGpuHour: 0 }, performanceScore: 0.9, reliability: { uptime: 0.98, interruptions: 1 } },
  { provider: 'aws', region: 'us-east-1', azIds: ['use1-az1'], country: 'US', capacity: shape(96, 1152, 8000, 8), pricePerHour: 32.77, gpu: { model: 'A100', memoryMiB: 40 * GiB }, placementGroup: 'pg-train-a', efa: true, performanceScore: 1.3, startDelayMs: 120_000 },
  { provider: 'gcp', region: 'us-central1', azIds: ['us-central1-a', 'us-central1-b'], country: 'US', capacity: standard, pricePerHour: 0.097, spot: true, performanceScore: 1.05, reliability: { uptime: 0.93, interruptions: 5 }, startDelayMs: 60_000 },
  { provider: 'nosana', region: 'br-sao', azIds: ['nos-sao-1'], country: 'BR', capacity: shape(8, 32, 500), prices: { perCpuHour: 0.009, perMemoryGiBHour: 0.0012, perGpuHour: 0 }, performanceScore: 0.85, reliability: { uptime: 0.94, interruptions: 3 } },
  { provider: 'aws', region: 'eu-west-1', azIds: ['euw1-az1', 'euw1-az2', 'euw1-az3'], country: 'IE', capacity: standard, pricePerHour: 0.428 },
  { provider: 'aws', region: 'us-east-1', azIds: ['use1-az2'], country: 'US', capacity: shape(8, 32, 450, 1), pricePerHour: 0.485, spot: true, gpu: { model: 'A10G', memoryMiB: 24 * GiB }, reliability: spotReliability, startDelayMs: 90_000 },
  { provider: 'nosana', region: 'us-nyc', azIds: ['nos-nyc-1'], country: 'US', capacity: host, prices: { perCpuHour: 0.013, perMemoryGiBHour: 0.0016, perGpuHour: 0 }, performanceScore: 0.95, reliability: { uptime: 0.97, interruptions: 2 } },
  { provider: 'aws', region: 'us-east-1', azIds: ['use1-az1'], country: 'US', capacity: shape(96, 1152, 8000, 8), pricePerHour: 32.77, gpu: { model: 'A100', memoryMiB: 40 * GiB }, placementGroup: 'pg-train-a', efa: true, performanceScore: 1.3, startDelayMs: 120_000 },
  { provider: 'azure', region: 'westeurope', azIds: ['weu-az1', 'weu-az2', 'weu-az3'], country: 'NL', capacity: standard, pricePerHour: 0.384 },
  { provider: 'gcp', region: 'europe-west4', azIds: ['europe-west4-a', 'europe-west4-b'], country: 'NL', capacity: standard, pricePerHour: 0.42, performanceScore: 1.05 },
]

/** The generated fleet for a mesh of `count` nodes (deterministic: no randomness). */
export function generatedFleet(count: number): NodeOffer[] {
  const seen = new Map<number, number>()
  return Array.from({ length: count }, (_, index): NodeOffer => {
    const slot = index % block.length
    const repeat = seen.get(slot) ?? 0
    seen.set(slot, repeat + 1)
    const template = block[slot]!
    const offer: NodeOffer = {
      nodeId: asNodeId(''),
      provider: template.provider,
      region: template.region,
      azId: template.azIds[(index + repeat) % template.azIds.length]!,
      country: template.country,
      spot: template.spot ?? false,
      labels: { tier: template.gpu !== undefined ? 'gpu' : 'standard' },
      efa: template.efa ?? false,
      capacity: template.capacity,
      free: template.capacity,
      prices: template.prices ?? unitPricesFromInstancePrice(template.pricePerHour ?? 0, template.capacity),
      performanceScore: template.performanceScore ?? 1,
      reliability: template.reliability ?? { uptime: 0.999, interruptions: 0 },
      startDelayMs: template.startDelayMs ?? 30_000,
    }
    if (template.gpu !== undefined) offer.gpu = template.gpu
    if (template.placementGroup !== undefined) offer.placementGroup = template.placementGroup
    return offer
  })
}

/** The fleet under the simulator's node ids (a fleet file names its nodes its own way). */
export function renameFleet(offers: readonly NodeOffer[], ids: readonly string[]): NodeOffer[] {
  return offers.map((offer, index) => ({ ...offer, nodeId: asNodeId(ids[index]!), free: offer.capacity }))
}

/** Spot prices drift within [low, high] of the list price, redrawn each period per spot node. */
export class SpotMarket {
  readonly #random: SeededRandom
  readonly #list: readonly UnitPrices[]
  static readonly low = 0.7
  static readonly high = 1.3
  static readonly periodMs = 10_000

  constructor(random: SeededRandom, offers: readonly NodeOffer[]) {
    this.#random = random
    this.#list = offers.map((offer) => offer.prices)
  }

  /** New prices for the spot nodes among `offers`: [index, prices] pairs. */
  move(offers: readonly NodeOffer[]): [number, UnitPrices][] {
    const moved: [number, UnitPrices][] = []
    offers.forEach((offer, index) => {
      if (!offer.spot) return
      const factor = SpotMarket.low + this.#random.next() * (SpotMarket.high - SpotMarket.low)
      const list = this.#list[index]!
      moved.push([index, { perCpuHour: list.perCpuHour * factor, perMemoryGiBHour: list.perMemoryGiBHour * factor, perGpuHour: list.perGpuHour * factor }])
    })
    return moved
  }
}
