// Helpers for placement tests: hand-made offers and job specs with readable defaults, so each
// test states only what it is about.
import type { PendingJob } from './auction.ts'
import { asJobId, validateJobSpec, type JobSpec } from './job-spec.ts'
import { asNodeId, type NodeOffer, type Resources } from './node-offer.ts'

export interface OfferInit extends Partial<Omit<NodeOffer, 'nodeId' | 'capacity' | 'free'>> {
  capacity?: Partial<Resources>
  free?: Partial<Resources>
  /** Whole-node price per hour split evenly as $/vCPU-hour (memory and GPUs free) unless prices given. */
  pricePerCpuHour?: number
}

/** An 8 vCPU / 32 GiB on-demand node in aws us-east-1 use1-az1 at $0.05 per vCPU-hour unless told otherwise. */
export function offer(id: string, init: OfferInit = {}): NodeOffer {
  const capacity: Resources = { cpuMillis: 8000, memoryMiB: 32 * 1024, diskMiB: 100 * 1024, gpuCount: 0, ...init.capacity }
  const { capacity: _capacity, free, pricePerCpuHour, ...rest } = init
  return {
    provider: 'aws',
    region: 'us-east-1',
    azId: 'use1-az1',
    country: 'US',
    spot: false,
    labels: {},
    efa: false,
    prices: { perCpuHour: pricePerCpuHour ?? 0.05, perMemoryGiBHour: 0, perGpuHour: 0 },
    performanceScore: 1,
    reliability: { uptime: 0.999, interruptions: 0 },
    startDelayMs: 10_000,
    ...rest,
    nodeId: asNodeId(id),
    capacity,
    free: { ...capacity, ...free },
  }
}

/** A valid job spec from a partial document (defaults: 1 vCPU, 1 GiB, image busybox). */
export function jobSpec(document: Record<string, unknown> = {}): JobSpec {
  const result = validateJobSpec({ name: 'test-job', image: 'busybox', resources: { cpu: 1, memory: '1Gi' }, ...document })
  if (!result.ok) throw new Error(`test spec invalid: ${JSON.stringify(result.errors)}`)
  return result.spec
}

export function job(id: string, spec: JobSpec): PendingJob {
  return { jobId: asJobId(id), spec }
}
