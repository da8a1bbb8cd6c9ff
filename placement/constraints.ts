// Hard constraints: whether a node may run a job at all. Each refusal is a value naming the
// constraint (and the resource, for capacity) so explain tables and the autoscaler can read it.
// Checked in a fixed order; the first failing constraint is the reason reported.
import type { Demand, JobConstraints } from './job-spec.ts'
import type { GpuKind, Resources } from './node-offer.ts'

export type ResourceName = 'cpu' | 'memory' | 'disk' | 'gpu'

export type Exclusion =
  | { kind: 'spot' }
  | { kind: 'provider'; provider: string; allowed: readonly string[] }
  | { kind: 'region'; region: string; allowed: readonly string[] }
  | { kind: 'az'; azId: string; allowed: readonly string[] }
  | { kind: 'sovereignty'; country: string; allowed: readonly string[] }
  | { kind: 'label'; key: string; want: string; have: string | undefined }
  | { kind: 'gpu_model'; want: readonly string[]; have: string | undefined }
  | { kind: 'gpu_memory'; needMiB: number; haveMiB: number }
  | { kind: 'resources'; resource: ResourceName; need: number; free: number; unit: 'millicores' | 'MiB' | 'GPUs' }
  | { kind: 'max_price'; askPerHour: number; maxPricePerHour: number }
  /** Eligible but sent no bid before the round closed (or declined). */
  | { kind: 'no_bid' }
  /** Not among the eligible bidders of the round (was not in the gossiped view). */
  | { kind: 'unknown_node' }

export interface NodeTraits {
  provider: string
  region: string
  azId: string
  country: string
  spot: boolean
  labels: Readonly<Record<string, string>>
  gpu?: GpuKind
}

export interface ConstraintSubject {
  constraints: JobConstraints
  demand: Demand
}

/** Constraints that depend only on what a node is, not on how busy it is. */
export function traitExclusion(subject: ConstraintSubject, node: NodeTraits): Exclusion | undefined {
  const c = subject.constraints
  if (node.spot && !c.spotAllowed) return { kind: 'spot' }
  if (c.providers && !c.providers.includes(node.provider)) return { kind: 'provider', provider: node.provider, allowed: c.providers }
  if (c.regions && !c.regions.includes(node.region)) return { kind: 'region', region: node.region, allowed: c.regions }
  if (c.azIds && !c.azIds.includes(node.azId)) return { kind: 'az', azId: node.azId, allowed: c.azIds }
  if (c.allowedCountries && !c.allowedCountries.includes(node.country)) return { kind: 'sovereignty', country: node.country, allowed: c.allowedCountries }
  for (const key in c.labels) {
    const want = c.labels[key]!
    const have = node.labels[key]
    if (have !== want) return { kind: 'label', key, want, have }
  }
  const demand = subject.demand
  if (demand.gpuCount > 0) {
    if (demand.gpuModels.length > 0 && (node.gpu === undefined || !demand.gpuModels.includes(node.gpu.model))) {
      return { kind: 'gpu_model', want: demand.gpuModels, have: node.gpu?.model }
    }
    if (demand.gpuMinMemoryMiB > 0 && (node.gpu?.memoryMiB ?? 0) < demand.gpuMinMemoryMiB) {
      return { kind: 'gpu_memory', needMiB: demand.gpuMinMemoryMiB, haveMiB: node.gpu?.memoryMiB ?? 0 }
    }
  }
  return undefined
}

/** The first resource one replica of `demand` does not find in `free`. */
export function resourceExclusion(demand: Demand, free: Resources): Exclusion | undefined {
  if (demand.gpuCount > free.gpuCount) return { kind: 'resources', resource: 'gpu', need: demand.gpuCount, free: free.gpuCount, unit: 'GPUs' }
  if (demand.cpuMillis > free.cpuMillis) return { kind: 'resources', resource: 'cpu', need: demand.cpuMillis, free: free.cpuMillis, unit: 'millicores' }
  if (demand.memoryMiB > free.memoryMiB) return { kind: 'resources', resource: 'memory', need: demand.memoryMiB, free: free.memoryMiB, unit: 'MiB' }
  if (demand.diskMiB > free.diskMiB) return { kind: 'resources', resource: 'disk', need: demand.diskMiB, free: free.diskMiB, unit: 'MiB' }
  return undefined
}

/** The hourly compute ask against the job's ceiling (transfer is a separate one-off cost). */
export function priceExclusion(askPerHour: number, maxPricePerHour: number | undefined): Exclusion | undefined {
  if (maxPricePerHour !== undefined && askPerHour > maxPricePerHour) return { kind: 'max_price', askPerHour, maxPricePerHour }
  return undefined
}

/** Every hard constraint, in the order reported. */
export function exclusionOf(subject: ConstraintSubject & { maxPricePerHour?: number }, node: NodeTraits, free: Resources, askPerHour: number): Exclusion | undefined {
  return traitExclusion(subject, node) ?? resourceExclusion(subject.demand, free) ?? priceExclusion(askPerHour, subject.maxPricePerHour)
}

/** A short stable key for counting reasons: `region`, `resources.memory`, ... */
export function exclusionKey(exclusion: Exclusion): string {
  return exclusion.kind === 'resources' ? `resources.${exclusion.resource}` : exclusion.kind
}

const money = (value: number): string => `$${value.toFixed(4)}`

/** One line for a human: which constraint and what it wanted. */
export function describeExclusion(exclusion: Exclusion): string {
  switch (exclusion.kind) {
    case 'spot':
      return 'spot node, job is on-demand only'
    case 'provider':
      return `provider ${exclusion.provider} not in [${exclusion.allowed.join(', ')}]`
    case 'region':
      return `region ${exclusion.region} not in [${exclusion.allowed.join(', ')}]`
    case 'az':
      return `AZ-ID ${exclusion.azId} not in [${exclusion.allowed.join(', ')}]`
    case 'sovereignty':
      return `country ${exclusion.country} not allowed by data sovereignty`
    case 'label':
      return `label ${exclusion.key}=${exclusion.want} wanted, node has ${exclusion.have ?? 'none'}`
    case 'gpu_model':
      return `GPU model ${exclusion.have ?? 'none'} not in [${exclusion.want.join(', ')}]`
    case 'gpu_memory':
      return `GPU memory ${exclusion.haveMiB} MiB < ${exclusion.needMiB} MiB`
    case 'resources':
      return `${exclusion.resource}: needs ${exclusion.need} ${exclusion.unit}, ${exclusion.free} free`
    case 'max_price':
      return `ask ${money(exclusion.askPerHour)}/h above max ${money(exclusion.maxPricePerHour)}/h`
    case 'no_bid':
      return 'no bid before the round closed'
    case 'unknown_node':
      return 'not an eligible bidder of this round'
  }
}
