// `fabric bench placement`: builds a synthetic heterogeneous fleet and job batch from a seed
// (a small local PRNG: bench input, not core logic) and times placeBatch with a clock and heap
// gauge the caller passes in (the CLI adapter), so placement/ itself reads neither.
import type { PendingJob } from './auction.ts'
import { asJobId, validateJobSpec, type JobSpec } from './job-spec.ts'
import { asNodeId, unitPricesFromInstancePrice, type NodeOffer } from './node-offer.ts'
import { costVsOptimal } from './optimal.ts'
import { placeBatch } from './place-batch.ts'

/** The clock and heap gauge the benchmark reads, passed in by the caller: placement/ stays free of I/O. */
export interface BenchMeter {
  nowMs(): number
  heapUsedBytes(): number
}

export interface BenchOptions {
  nodes: number
  jobs: number
  seed?: number
  meter: BenchMeter
}

export interface BenchResult {
  nodes: number
  jobs: number
  seed: number
  /** Jobs with every replica placed. */
  placed: number
  /** Jobs (or some of their replicas) left pending with a reason. */
  unplaceable: number
  replicasPlaced: number
  jobClasses: number
  rounds: number
  /** Fully placed jobs per second of placeBatch wall time (one core). */
  placementsPerSec: number
  /** Jobs decided (placed or pending with a reason) per second. */
  decisionsPerSec: number
  wallMs: number
  heapUsedMB: number
  /** Winners' asks plus transfer against the no-contention lower bound, for placed jobs. */
  costVsOptimal: number
}

/** mulberry32: tiny, deterministic, good enough for generating bench inputs. */
function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface NodeKind {
  weight: number
  provider: string
  places: { region: string; country: string; azIds: string[] }[]
  instanceType: string
  cpu: number
  memoryGiB: number
  gpu?: { model: string; memoryGiB: number; count: number }
  onDemandPrice: number
  /** Fraction of nodes that are spot, and the spot discount. */
  spotShare: number
  spotDiscount: number
  performance: number
  placementGroup?: boolean
  efa?: boolean
  /** Decentralized hosts set their own prices: +-priceJitter around the list. */
  priceJitter?: number
}

const awsUs = { region: 'us-east-1', country: 'US', azIds: ['use1-az1', 'use1-az2', 'use1-az4'] }
const awsEu = { region: 'eu-west-1', country: 'IE', azIds: ['euw1-az1', 'euw1-az2', 'euw1-az3'] }
const gcpUs = { region: 'us-central1', country: 'US', azIds: ['us-central1-a', 'us-central1-b'] }
const gcpEu = { region: 'europe-west4', country: 'NL', azIds: ['europe-west4-a', 'europe-west4-b'] }

const nodeKinds: NodeKind[] = [
  { weight: 20, provider: 'aws', places: [awsUs, awsEu], instanceType: 'm6i.16xlarge', cpu: 64, memoryGiB: 256, onDemandPrice: 3.072, spotShare: 0.5, spotDiscount: 0.6, performance: 1 },
  { weight: 12, provider: 'aws', places: [awsUs, awsEu], instanceType: 'c6i.16xlarge', cpu: 64, memoryGiB: 128, onDemandPrice: 2.72, spotShare: 0.5, spotDiscount: 0.6, performance: 1.1 },
  { weight: 8, provider: 'aws', places: [awsUs], instanceType: 'r6i.8xlarge', cpu: 32, memoryGiB: 256, onDemandPrice: 2.016, spotShare: 0.3, spotDiscount: 0.6, performance: 1 },
  { weight: 15, provider: 'gcp', places: [gcpUs, gcpEu], instanceType: 'n2-standard-64', cpu: 64, memoryGiB: 256, onDemandPrice: 3.1, spotShare: 0.4, spotDiscount: 0.65, performance: 1.05 },
  { weight: 8, provider: 'azure', places: [{ region: 'westeurope', country: 'NL', azIds: ['weu-az1', 'weu-az2', 'weu-az3'] }], instanceType: 'D64s_v5', cpu: 64, memoryGiB: 256, onDemandPrice: 3.07, spotShare: 0.3, spotDiscount: 0.6, performance: 1 },
  {
    weight: 25,
    provider: 'nosana',
    places: [
      { region: 'de-fra', country: 'DE', azIds: ['nos-fra-1'] },
      { region: 'fi-hel', country: 'FI', azIds: ['nos-hel-1'] },
      { region: 'us-nyc', country: 'US', azIds: ['nos-nyc-1'] },
      { region: 'br-sao', country: 'BR', azIds: ['nos-sao-1'] },
    ],
    instanceType: 'host-32',
    cpu: 32,
    memoryGiB: 128,
    onDemandPrice: 0.9,
    spotShare: 0,
    spotDiscount: 1,
    performance: 0.9,
    priceJitter: 0.25,
  },
  { weight: 4, provider: 'lambda', places: [{ region: 'us-west-1', country: 'US', azIds: ['lam-usw1-a', 'lam-usw1-b'] }], instanceType: 'gpu_8x_a100_80gb', cpu: 124, memoryGiB: 1800, gpu: { model: 'A100', memoryGiB: 80, count: 8 }, onDemandPrice: 14.32, spotShare: 0, spotDiscount: 1, performance: 1.2, placementGroup: true },
  { weight: 3, provider: 'aws', places: [awsUs], instanceType: 'p4d.24xlarge', cpu: 96, memoryGiB: 1152, gpu: { model: 'A100', memoryGiB: 40, count: 8 }, onDemandPrice: 32.77, spotShare: 0.3, spotDiscount: 0.4, performance: 1.2, placementGroup: true, efa: true },
  { weight: 5, provider: 'aws', places: [awsUs, awsEu], instanceType: 'g5.12xlarge', cpu: 48, memoryGiB: 192, gpu: { model: 'A10G', memoryGiB: 24, count: 4 }, onDemandPrice: 5.672, spotShare: 0.5, spotDiscount: 0.5, performance: 1 },
]

/** A deterministic heterogeneous fleet of `count` nodes. */
export function syntheticFleet(count: number, seed: number): NodeOffer[] {
  const random = prng(seed)
  const totalWeight = nodeKinds.reduce((sum, kind) => sum + kind.weight, 0)
  const offers: NodeOffer[] = []
  for (let index = 0; index < count; index++) {
    let pick = random() * totalWeight
    let kind = nodeKinds[0]!
    for (const candidate of nodeKinds) {
      if ((pick -= candidate.weight) < 0) {
        kind = candidate
        break
      }
    }
    const place = kind.places[Math.floor(random() * kind.places.length)]!
    const azId = place.azIds[Math.floor(random() * place.azIds.length)]!
    const spot = random() < kind.spotShare
    // Prices on a 1/10-cent grid so identical instance types really are equal bidders.
    const jitter = kind.priceJitter ? 1 + kind.priceJitter * (2 * random() - 1) : 1
    const price = Math.round(kind.onDemandPrice * (spot ? kind.spotDiscount : 1) * jitter * 1000) / 1000
    const capacity = { cpuMillis: kind.cpu * 1000, memoryMiB: kind.memoryGiB * 1024, diskMiB: 500 * 1024, gpuCount: kind.gpu?.count ?? 0 }
    const offer: NodeOffer = {
      nodeId: asNodeId(`${kind.provider}-${azId}-${spot ? 'spot' : 'od'}-${String(index).padStart(5, '0')}`),
      provider: kind.provider,
      region: place.region,
      azId,
      country: place.country,
      instanceType: kind.instanceType,
      spot,
      labels: { tier: random() < 0.2 ? 'secure' : 'standard' },
      efa: kind.efa ?? false,
      capacity,
      free: { ...capacity },
      prices: unitPricesFromInstancePrice(price, capacity),
      performanceScore: Math.round(kind.performance * (0.95 + 0.1 * random()) * 100) / 100,
      reliability: { uptime: spot ? 0.95 : 0.995, interruptions: spot ? Math.floor(random() * 4) : 0 },
      startDelayMs: spot ? 60_000 : 20_000,
    }
    if (kind.gpu) offer.gpu = { model: kind.gpu.model, memoryMiB: kind.gpu.memoryGiB * 1024 }
    if (kind.placementGroup) offer.placementGroup = `pg-${azId}`
    offers.push(offer)
  }
  return offers
}

function spec(raw: Record<string, unknown>): JobSpec {
  const result = validateJobSpec(raw)
  if (!result.ok) throw new Error(`assertion: bench template ${String(raw.name)} invalid: ${JSON.stringify(result.errors)}`)
  return result.spec
}

/** Bench job templates with weights: a mix of strategies, intents and constraints. */
export function benchTemplates(): { weight: number; spec: JobSpec }[] {
  const image = 'registry.example/app:1'
  return [
    { weight: 30, spec: spec({ name: 'web', image, resources: { cpu: '100m', memory: '128Mi' } }) },
    { weight: 15, spec: spec({ name: 'api', image, replicas: 2, intent: 'balanced', strategy: 'balanced', resources: { cpu: '250m', memory: '512Mi' } }) },
    { weight: 20, spec: spec({ name: 'batch', image, resources: { cpu: '500m', memory: '1Gi' } }) },
    {
      weight: 8,
      spec: spec({
        name: 'etl',
        image,
        resources: { cpu: 1, memory: '2Gi' },
        data: [{ name: 'lake', location: { provider: 'aws', region: 'us-east-1', azId: 'use1-az1' }, size: '50GB' }],
        timeout: '2h',
      }),
    },
    { weight: 5, spec: spec({ name: 'cache', image, strategy: 'best_performance', resources: { cpu: 1, memory: '8Gi' } }) },
    { weight: 6, spec: spec({ name: 'ha-web', image, replicas: 3, strategy: 'high_availability', resources: { cpu: '250m', memory: '256Mi' }, constraints: { spotAllowed: false } }) },
    { weight: 6, spec: spec({ name: 'eu-only', image, resources: { cpu: '500m', memory: '1Gi' }, constraints: { sovereignty: { regions: ['EU'] }, spotAllowed: false } }) },
    { weight: 5, spec: spec({ name: 'tuned', image, strategy: 'custom', weights: { cost: 0.6, performance: 0.4 }, resources: { cpu: '500m', memory: '512Mi' } }) },
    { weight: 2, spec: spec({ name: 'secure', image, resources: { cpu: '250m', memory: '256Mi' }, constraints: { labels: { tier: 'secure' } } }) },
    { weight: 1, spec: spec({ name: 'urgent', image, priority: 10, resources: { cpu: '500m', memory: '1Gi' }, maxPricePerHour: 0.05 }) },
    { weight: 0.3, spec: spec({ name: 'infer', image, resources: { cpu: 4, memory: '16Gi', gpu: { count: 1, minMemory: '24Gi' } } }) },
    {
      weight: 0.1,
      spec: spec({ name: 'train', image, replicas: 4, intent: 'tightly-coupled', resources: { cpu: 8, memory: '64Gi', gpu: { count: 2, model: 'A100' } } }),
    },
  ]
}

/** `count` jobs drawn from the templates by weight; jobs of a template share its spec object. */
export function syntheticJobs(count: number, seed: number): PendingJob[] {
  const random = prng(seed ^ 0x9e3779b9)
  const templates = benchTemplates()
  const totalWeight = templates.reduce((sum, template) => sum + template.weight, 0)
  const jobs: PendingJob[] = []
  for (let index = 0; index < count; index++) {
    let pick = random() * totalWeight
    let chosen = templates[0]!
    for (const template of templates) {
      if ((pick -= template.weight) < 0) {
        chosen = template
        break
      }
    }
    jobs.push({ jobId: asJobId(`job-${String(index).padStart(6, '0')}`), spec: chosen.spec })
  }
  return jobs
}

export function benchPlacement(options: BenchOptions): BenchResult {
  const seed = options.seed ?? 1
  const offers = syntheticFleet(options.nodes, seed)
  const jobs = syntheticJobs(options.jobs, seed)
  const started = options.meter.nowMs()
  const result = placeBatch(jobs, offers, { nowMs: 0 })
  const wallMs = options.meter.nowMs() - started
  const heapUsedMB = options.meter.heapUsedBytes() / 2 ** 20

  const unplacedJobs = new Set(result.pending.map((entry) => entry.jobId))
  for (const job of result.deferred) unplacedJobs.add(job.jobId)
  const placed = jobs.length - unplacedJobs.size
  const seconds = Math.max(wallMs, 0.001) / 1000
  const comparison = costVsOptimal(jobs, result.awards, offers)
  return {
    nodes: options.nodes,
    jobs: options.jobs,
    seed,
    placed,
    unplaceable: unplacedJobs.size,
    replicasPlaced: result.awards.length,
    jobClasses: result.rounds.reduce((sum, round) => sum + round.explanation.classes.length, 0),
    rounds: result.rounds.length,
    placementsPerSec: Math.round(placed / seconds),
    decisionsPerSec: Math.round(jobs.length / seconds),
    wallMs: Math.round(wallMs * 10) / 10,
    heapUsedMB: Math.round(heapUsedMB * 10) / 10,
    costVsOptimal: Math.round(comparison.costVsOptimal * 10_000) / 10_000,
  }
}
