// A node's view of itself for bidding (static attributes from the registry plus gossiped soft
// state: free capacity, prices, reliability). Prices are per resource-hour, so the ask for any
// job is `cpu x perCpuHour + memory GiB x perMemoryGiBHour + gpus x perGpuHour`.
import type { Demand } from './job-spec.ts'

export type NodeId = string & { readonly __brand: 'NodeId' }
export const asNodeId = (value: string): NodeId => value as NodeId

export interface Resources {
  cpuMillis: number
  memoryMiB: number
  diskMiB: number
  gpuCount: number
}

export interface UnitPrices {
  perCpuHour: number
  perMemoryGiBHour: number
  perGpuHour: number
}

export interface Reliability {
  /** Fraction of the last window the node was up, 0..1. */
  uptime: number
  /** Interruptions (spot reclaims, crashes) in the last window. */
  interruptions: number
}

export interface GpuKind {
  model: string
  memoryMiB: number
}

export interface NodeOffer {
  nodeId: NodeId
  provider: string
  region: string
  azId: string
  /** ISO 3166 country code where the node runs. */
  country: string
  instanceType?: string
  spot: boolean
  labels: Readonly<Record<string, string>>
  placementGroup?: string
  efa: boolean
  /** All GPUs of a node are one model; their count is in capacity.gpuCount. */
  gpu?: GpuKind
  capacity: Resources
  free: Resources
  prices: UnitPrices
  /** Relative speed, 1 = baseline. */
  performanceScore: number
  reliability: Reliability
  /** How long after an award the job could start (image pull, boot). */
  startDelayMs: number
}

/** The hourly ask for one replica of `demand` at `prices`. */
export function askPerHour(prices: UnitPrices, demand: Demand): number {
  return (demand.cpuMillis / 1000) * prices.perCpuHour + (demand.memoryMiB / 1024) * prices.perMemoryGiBHour + demand.gpuCount * prices.perGpuHour
}

/** How many vCPUs one GPU is worth when an instance price is split into unit prices. */
export const gpuCpuEquivalent = 32
/** How many GiB of memory cost as much as one vCPU when an instance price is split. */
export const memoryGiBPerCpu = 8

/**
 * Splits a whole-instance price into unit prices so that asking for the whole instance costs
 * exactly `pricePerHour`: one unit = 1 vCPU = 8 GiB = 1/32 GPU.
 */
export function unitPricesFromInstancePrice(pricePerHour: number, shape: Resources): UnitPrices {
  const units = shape.cpuMillis / 1000 + shape.memoryMiB / 1024 / memoryGiBPerCpu + shape.gpuCount * gpuCpuEquivalent
  const perUnit = units > 0 ? pricePerHour / units : 0
  return { perCpuHour: perUnit, perMemoryGiBHour: perUnit / memoryGiBPerCpu, perGpuHour: perUnit * gpuCpuEquivalent }
}

/** The hourly price of the whole node at its unit prices. */
export function nodePricePerHour(offer: Pick<NodeOffer, 'prices' | 'capacity'>): number {
  const { prices, capacity } = offer
  return (capacity.cpuMillis / 1000) * prices.perCpuHour + (capacity.memoryMiB / 1024) * prices.perMemoryGiBHour + capacity.gpuCount * prices.perGpuHour
}

export function fitsResources(free: Resources, demand: Demand): boolean {
  return demand.cpuMillis <= free.cpuMillis && demand.memoryMiB <= free.memoryMiB && demand.diskMiB <= free.diskMiB && demand.gpuCount <= free.gpuCount
}

export function subtractDemand(free: Resources, demand: Demand, replicas = 1): Resources {
  return {
    cpuMillis: free.cpuMillis - demand.cpuMillis * replicas,
    memoryMiB: free.memoryMiB - demand.memoryMiB * replicas,
    diskMiB: free.diskMiB - demand.diskMiB * replicas,
    gpuCount: free.gpuCount - demand.gpuCount * replicas,
  }
}
