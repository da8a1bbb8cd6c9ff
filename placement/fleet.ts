// Fleet descriptions for simulations and dry runs: YAML node groups (count, provider, region,
// AZ-IDs, instance shape, price, spot, performance, GPUs, labels, placement group, EFA) expanded
// into NodeOffers with deterministic ids like `aws-use1-az1-spot-0003`.
import { z } from 'zod'
import { countryOfRegion } from './cost-model.ts'
import { cpuMillis, durationMs, issuesToErrors, parseYamlText, sizeMiB, type SpecError } from './job-spec.ts'
import { asNodeId, unitPricesFromInstancePrice, type NodeOffer, type Resources, type UnitPrices } from './node-offer.ts'

export const fleetLimits = { maxNodes: 100_000, maxGroups: 1_000 } as const

const groupSchema = z
  .strictObject({
    name: z.string().min(1).optional(),
    count: z.number().int().min(1).max(fleetLimits.maxNodes),
    provider: z.string().regex(/^[a-z0-9][-a-z0-9]*$/, 'expected a provider name of lowercase letters, digits and dashes'),
    region: z.string().min(1),
    azIds: z.array(z.string().min(1)).min(1, 'expected at least one AZ-ID'),
    country: z.string().regex(/^[A-Za-z]{2}$/, 'expected an ISO 3166 two-letter country code').optional(),
    instanceType: z.string().min(1).optional(),
    shape: z.strictObject({ cpu: cpuMillis, memory: sizeMiB('a memory size'), disk: sizeMiB('a disk size').optional() }),
    gpu: z.strictObject({ model: z.string().min(1), memory: sizeMiB('a GPU memory size'), count: z.number().int().min(1) }).optional(),
    pricePerHour: z.number().min(0).optional(),
    prices: z.strictObject({ perCpuHour: z.number().min(0), perMemoryGiBHour: z.number().min(0), perGpuHour: z.number().min(0).optional() }).optional(),
    spot: z.boolean().optional(),
    performance: z.number().positive().optional(),
    reliability: z.strictObject({ uptime: z.number().min(0).max(1), interruptions: z.number().int().min(0) }).optional(),
    labels: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
    placementGroup: z.string().min(1).optional(),
    efa: z.boolean().optional(),
    startDelay: durationMs.optional(),
  })
  .superRefine((group, context) => {
    if ((group.pricePerHour === undefined) === (group.prices === undefined)) {
      context.addIssue({ code: 'custom', path: ['pricePerHour'], message: 'expected exactly one of pricePerHour (whole node) or prices (per resource)' })
    }
    if (group.country === undefined && countryOfRegion(group.region) === undefined) {
      context.addIssue({ code: 'custom', path: ['country'], message: `required: region ${group.region} is not a known cloud region` })
    }
  })

const fleetSchema = z.strictObject({
  name: z.string().optional(),
  groups: z.array(groupSchema).min(1, 'expected at least one node group').max(fleetLimits.maxGroups),
})

export type FleetResult = { ok: true; offers: NodeOffer[] } | { ok: false; errors: SpecError[] }

/** Short id part for an AZ-ID: AWS-style ids (`use1-az1`) are kept, others slugged. */
const slug = (text: string): string => text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')

export function parseFleet(text: string, source = 'fleet'): FleetResult {
  const parsed = parseYamlText(text, source)
  if (!parsed.ok) return parsed
  const result = fleetSchema.safeParse(parsed.value)
  if (!result.success) return { ok: false, errors: issuesToErrors(result.error.issues) }
  const total = result.data.groups.reduce((sum, group) => sum + group.count, 0)
  if (total > fleetLimits.maxNodes) return { ok: false, errors: [{ path: 'groups', message: `expected at most ${fleetLimits.maxNodes} nodes in all` }] }

  const offers: NodeOffer[] = []
  const counters = new Map<string, number>()
  for (const group of result.data.groups) {
    const capacity: Resources = {
      cpuMillis: group.shape.cpu,
      memoryMiB: group.shape.memory,
      diskMiB: group.shape.disk ?? 100 * 1024,
      gpuCount: group.gpu?.count ?? 0,
    }
    const prices: UnitPrices = group.prices
      ? { perCpuHour: group.prices.perCpuHour, perMemoryGiBHour: group.prices.perMemoryGiBHour, perGpuHour: group.prices.perGpuHour ?? 0 }
      : unitPricesFromInstancePrice(group.pricePerHour!, capacity)
    const spot = group.spot ?? false
    for (let index = 0; index < group.count; index++) {
      const azId = group.azIds[index % group.azIds.length]!
      const prefix = `${slug(group.provider)}-${slug(azId)}-${spot ? 'spot' : 'od'}`
      const serial = counters.get(prefix) ?? 0
      counters.set(prefix, serial + 1)
      const offer: NodeOffer = {
        nodeId: asNodeId(`${prefix}-${String(serial).padStart(4, '0')}`),
        provider: group.provider,
        region: group.region,
        azId,
        country: (group.country ?? countryOfRegion(group.region)!).toUpperCase(),
        spot,
        labels: group.labels ?? {},
        efa: group.efa ?? false,
        capacity,
        free: { ...capacity },
        prices,
        performanceScore: group.performance ?? 1,
        reliability: group.reliability ?? { uptime: spot ? 0.95 : 0.999, interruptions: spot ? 2 : 0 },
        startDelayMs: group.startDelay ?? 30_000,
      }
      if (group.instanceType !== undefined) offer.instanceType = group.instanceType
      if (group.placementGroup !== undefined) offer.placementGroup = group.placementGroup
      if (group.gpu !== undefined) offer.gpu = { model: group.gpu.model, memoryMiB: group.gpu.memory }
      offers.push(offer)
    }
  }
  return { ok: true, offers }
}
