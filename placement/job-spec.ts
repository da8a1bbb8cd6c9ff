// The job spec: what a user submits (YAML or JSON), validated by a zod schema and normalized
// (cpu in millicores, memory and disk in MiB, durations in ms, sovereignty as country codes).
// An invalid spec is refused whole: every error names the field path and what was expected.
import { parseDocument } from 'yaml'
import { z } from 'zod'
import { countryGroups, expandSovereignty } from './cost-model.ts'

export type JobId = string & { readonly __brand: 'JobId' }
export const asJobId = (value: string): JobId => value as JobId

export type Intent = 'throughput' | 'tightly-coupled' | 'balanced'
export type StrategyName = 'lowest_cost' | 'best_performance' | 'balanced' | 'high_availability' | 'custom'
export const strategyNames: readonly StrategyName[] = ['lowest_cost', 'best_performance', 'balanced', 'high_availability', 'custom']
export const intents: readonly Intent[] = ['throughput', 'tightly-coupled', 'balanced']

/** Relative weights of a scoring strategy; normalized to sum 1 before use. */
export interface StrategyWeights {
  cost: number
  performance: number
  reliability: number
  startTime: number
}

/** What one replica needs from a node. */
export interface Demand {
  cpuMillis: number
  memoryMiB: number
  diskMiB: number
  gpuCount: number
  /** Acceptable GPU models; empty means any model. */
  gpuModels: readonly string[]
  gpuMinMemoryMiB: number
}

export interface DataLocation {
  provider: string
  region: string
  azId?: string
}

export interface DataInput {
  name: string
  location: DataLocation
  sizeGB: number
}

export interface JobConstraints {
  providers?: readonly string[]
  regions?: readonly string[]
  azIds?: readonly string[]
  /** Every label here must be present on the node with this exact value. */
  labels: Readonly<Record<string, string>>
  /** Data sovereignty: ISO country codes the job may run in (region groups already expanded). */
  allowedCountries?: readonly string[]
  spotAllowed: boolean
}

export interface CheckpointPolicy {
  intervalMs: number
  keep: number
  /** Peers (in other failure domains) that hold a copy of each snapshot besides the node that made it. */
  replicas: number
}

/** A validated, normalized job spec. */
export interface JobSpec {
  name: string
  image?: string
  command?: readonly string[]
  args: readonly string[]
  env: Readonly<Record<string, string>>
  resources: Demand
  replicas: number
  intent: Intent
  strategy: StrategyName
  /** Present exactly when strategy is custom. */
  weights?: StrategyWeights
  constraints: JobConstraints
  data: readonly DataInput[]
  maxPricePerHour?: number
  priority: number
  timeoutMs?: number
  retries: number
  checkpoint?: CheckpointPolicy
}

export interface SpecError {
  path: string
  message: string
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: SpecError[] }
export type JobSpecResult = { ok: true; spec: JobSpec } | { ok: false; errors: SpecError[] }

/** Limits (STYLE: every input has a named maximum). */
export const jobSpecLimits = {
  maxReplicas: 10_000,
  maxDataInputs: 64,
  maxEnvEntries: 256,
  maxSpecBytes: 256 * 1024,
  maxSnapshotReplicas: 8,
} as const

// ---------------------------------------------------------------------------------------------
// Quantities: sizes, cpu, durations

const binaryUnits: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 }
const decimalUnits: Record<string, number> = { K: 1e3, M: 1e6, G: 1e9, T: 1e12, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }
const sizePattern = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|[KMGT]iB)?\s*$/

/** Bytes in a size string, or undefined; a bare number string is in `bareUnitBytes`. */
export function parseSizeBytes(text: string, bareUnitBytes: number): number | undefined {
  const match = sizePattern.exec(text)
  if (!match) return undefined
  const amount = Number(match[1])
  const unit = match[2]
  if (unit === undefined) return amount * bareUnitBytes
  const factor = binaryUnits[unit] ?? decimalUnits[unit]
  return factor === undefined ? undefined : amount * factor
}

const durationPattern = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/
const durationUnitsMs: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Milliseconds in a duration like "90s", "10m", "1h30m", "500ms"; undefined if malformed. */
export function parseDurationMs(text: string): number | undefined {
  let rest = text.trim()
  if (rest === '') return undefined
  let total = 0
  while (rest !== '') {
    const match = durationPattern.exec(rest)
    if (!match) return undefined
    total += Number(match[1]) * durationUnitsMs[match[2]!]!
    rest = rest.slice(match[0].length)
  }
  return total
}

const describe = (value: unknown): string => (typeof value === 'string' ? JSON.stringify(value) : value === null ? 'null' : typeof value)

/** A size normalized to whole MiB: a number is MiB, a string takes Ki/Mi/Gi/Ti or K/M/G/T. */
export const sizeMiB = (what: string) =>
  z.unknown().transform((value, context): number => {
    const expected = `expected ${what} like "512Mi", "4Gi" or a number of MiB`
    let bytes: number | undefined
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) bytes = value * 2 ** 20
    else if (typeof value === 'string') bytes = parseSizeBytes(value, 2 ** 20)
    if (bytes === undefined) {
      context.addIssue({ code: 'custom', message: value === undefined ? `required: ${expected}` : `${expected}, got ${describe(value)}` })
      return z.NEVER
    }
    return Math.ceil(bytes / 2 ** 20)
  })

/** A data size in decimal GB (transfer is priced per GB): a number is GB, a string takes units. */
const sizeGB = z.unknown().transform((value, context): number => {
  const expected = 'expected a data size like "200GB", "1.5TB", "50Gi" or a number of GB'
  let bytes: number | undefined
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) bytes = value * 1e9
  else if (typeof value === 'string') bytes = parseSizeBytes(value, 1e9)
  if (bytes === undefined) {
    context.addIssue({ code: 'custom', message: value === undefined ? `required: ${expected}` : `${expected}, got ${describe(value)}` })
    return z.NEVER
  }
  return bytes / 1e9
})

/** CPU in millicores: a number of cores (0.5) or a string ("500m", "2"). */
export const cpuMillis = z.unknown().transform((value, context): number => {
  const expected = 'expected cpu as a number of cores (e.g. 2, 0.5) or millicores like "500m"'
  let millis: number | undefined
  if (typeof value === 'number' && Number.isFinite(value)) millis = value * 1000
  else if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)(m?)\s*$/.exec(value)
    if (match) millis = match[2] === 'm' ? Number(match[1]) : Number(match[1]) * 1000
  }
  if (millis === undefined || millis <= 0) {
    context.addIssue({ code: 'custom', message: value === undefined ? `required: ${expected}` : `${expected} and above zero, got ${describe(value)}` })
    return z.NEVER
  }
  return Math.ceil(millis)
})

/** A duration in ms: a number of seconds or a string like "90s", "10m", "1h30m". */
export const durationMs = z.unknown().transform((value, context): number => {
  const expected = 'expected a duration like "90s", "10m", "2h" or a number of seconds'
  let ms: number | undefined
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) ms = value * 1000
  else if (typeof value === 'string') ms = parseDurationMs(value)
  if (ms === undefined || ms <= 0) {
    context.addIssue({ code: 'custom', message: `${expected}, got ${describe(value)}` })
    return z.NEVER
  }
  return ms
})

// ---------------------------------------------------------------------------------------------
// Schema of the document as written

const nameSchema = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a name of lowercase letters, digits and dashes (at most 63)')
const stringList = z.array(z.string().min(1)).min(1, 'expected at least one entry')
const stringMap = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String))
const weight = z.number().min(0, 'expected a weight >= 0')

const gpuSchema = z.strictObject({
  count: z.number().int().min(1, 'expected at least 1 GPU'),
  model: z.union([z.string().min(1), stringList]).optional(),
  minMemory: sizeMiB('a GPU memory size').optional(),
})

const resourcesSchema = z.strictObject({
  cpu: cpuMillis,
  memory: sizeMiB('a memory size'),
  disk: sizeMiB('a disk size').optional(),
  gpu: gpuSchema.optional(),
})

const sovereigntySchema = z.strictObject({
  countries: z.array(z.string().regex(/^[A-Za-z]{2}$/, 'expected an ISO 3166 two-letter country code')).optional(),
  regions: z
    .array(z.enum(Object.keys(countryGroups) as [string, ...string[]], { error: `expected one of ${Object.keys(countryGroups).join(', ')}` }))
    .optional(),
})

const constraintsSchema = z.strictObject({
  providers: stringList.optional(),
  regions: stringList.optional(),
  azIds: stringList.optional(),
  labels: stringMap.optional(),
  sovereignty: sovereigntySchema.optional(),
  spotAllowed: z.boolean().optional(),
})

const dataSchema = z.strictObject({
  name: z.string().min(1),
  location: z.strictObject({ provider: z.string().min(1), region: z.string().min(1), azId: z.string().min(1).optional() }),
  size: sizeGB,
})

const weightsSchema = z.strictObject({
  cost: weight.optional(),
  performance: weight.optional(),
  reliability: weight.optional(),
  startTime: weight.optional(),
})

const jobSpecSchema = z
  .strictObject({
    name: nameSchema,
    image: z.string().min(1).optional(),
    command: z.union([z.string().min(1), z.array(z.string()).min(1)]).optional(),
    args: z.array(z.union([z.string(), z.number()]).transform(String)).optional(),
    env: stringMap.optional(),
    resources: resourcesSchema,
    replicas: z.number().int().min(1, 'expected at least 1 replica').max(jobSpecLimits.maxReplicas).optional(),
    intent: z.enum(intents as [Intent, ...Intent[]]).optional(),
    strategy: z.enum(strategyNames as [StrategyName, ...StrategyName[]]).optional(),
    weights: weightsSchema.optional(),
    constraints: constraintsSchema.optional(),
    data: z.array(dataSchema).max(jobSpecLimits.maxDataInputs).optional(),
    maxPricePerHour: z.number().positive('expected a price per hour above zero').optional(),
    priority: z.number().int().optional(),
    timeout: durationMs.optional(),
    retries: z.number().int().min(0, 'expected retries >= 0').max(100).optional(),
    checkpoint: z
      .strictObject({
        interval: durationMs,
        keep: z.number().int().min(1, 'expected to keep at least 1 checkpoint').optional(),
        replicas: z.number().int().min(0).max(jobSpecLimits.maxSnapshotReplicas, `expected at most ${jobSpecLimits.maxSnapshotReplicas} replicas`).optional(),
      })
      .optional(),
  })

/**
 * Rules across fields, checked on the document as written so they are reported together with
 * field errors (zod skips refinements of an object whose fields failed).
 */
function crossFieldErrors(value: unknown): SpecError[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return []
  const spec = value as Record<string, unknown>
  const errors: SpecError[] = []
  if (spec.image === undefined && spec.command === undefined) errors.push({ path: 'image', message: 'expected an image or a command (neither is set)' })
  const weights = spec.weights
  if (spec.strategy === 'custom') {
    if (weights === undefined) errors.push({ path: 'weights', message: 'required when strategy is custom: {cost, performance, reliability, startTime}' })
    else if (weights !== null && typeof weights === 'object') {
      const sum = Object.values(weights).reduce((total: number, item) => total + (typeof item === 'number' && item > 0 ? item : 0), 0)
      if (!(sum > 0)) errors.push({ path: 'weights', message: 'expected at least one weight above zero' })
    }
  } else if (weights !== undefined) {
    errors.push({ path: 'weights', message: 'only allowed when strategy is custom' })
  }
  if (spec.env !== null && typeof spec.env === 'object' && Object.keys(spec.env).length > jobSpecLimits.maxEnvEntries) {
    errors.push({ path: 'env', message: `expected at most ${jobSpecLimits.maxEnvEntries} entries` })
  }
  const constraints = spec.constraints as Record<string, unknown> | undefined
  const sovereignty = constraints !== null && typeof constraints === 'object' ? (constraints.sovereignty as Record<string, unknown> | undefined) : undefined
  if (sovereignty !== null && typeof sovereignty === 'object') {
    const count = (list: unknown): number => (Array.isArray(list) ? list.length : 0)
    if (count(sovereignty.countries) + count(sovereignty.regions) === 0) {
      errors.push({ path: 'constraints.sovereignty', message: 'expected countries or regions (an empty rule would allow nothing)' })
    }
  }
  return errors
}

type RawJobSpec = z.output<typeof jobSpecSchema>

// ---------------------------------------------------------------------------------------------
// Parsing

/** `data[0].size` from ['data', 0, 'size']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = ''
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`
    else text += text === '' ? String(key) : `.${String(key)}`
  }
  return text === '' ? '(root)' : text
}

/** Turns zod issues into `{ path, message }`, one per unknown key. */
export function issuesToErrors(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []): SpecError[] {
  const errors: SpecError[] = []
  for (const issue of issues) {
    const path = [...prefix, ...issue.path]
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) errors.push({ path: formatPath([...path, key]), message: 'unknown field' })
    } else {
      errors.push({ path: formatPath(path), message: issue.message })
    }
  }
  return errors
}

/** Parses YAML (JSON is valid YAML) into a plain value, or syntax errors with line numbers. */
export function parseYamlText(text: string, source = 'spec'): ParseResult<unknown> {
  if (text.length > jobSpecLimits.maxSpecBytes) {
    return { ok: false, errors: [{ path: '(document)', message: `${source}: expected at most ${jobSpecLimits.maxSpecBytes} bytes` }] }
  }
  const document = parseDocument(text, { prettyErrors: true })
  if (document.errors.length > 0) {
    return { ok: false, errors: document.errors.map((error) => ({ path: '(syntax)', message: `${source}: ${error.message.split('\n')[0]!.replace(/:$/, '')}` })) }
  }
  return { ok: true, value: document.toJS() as unknown }
}

function normalize(raw: RawJobSpec): JobSpec {
  const gpu = raw.resources.gpu
  const gpuModels = gpu?.model === undefined ? [] : typeof gpu.model === 'string' ? [gpu.model] : gpu.model
  const resources: Demand = {
    cpuMillis: raw.resources.cpu,
    memoryMiB: raw.resources.memory,
    diskMiB: raw.resources.disk ?? 0,
    gpuCount: gpu?.count ?? 0,
    gpuModels: [...gpuModels].sort(),
    gpuMinMemoryMiB: gpu?.minMemory ?? 0,
  }
  const rawConstraints = raw.constraints ?? {}
  const constraints: JobConstraints = {
    labels: rawConstraints.labels ?? {},
    spotAllowed: rawConstraints.spotAllowed ?? true,
  }
  if (rawConstraints.providers) constraints.providers = [...rawConstraints.providers].sort()
  if (rawConstraints.regions) constraints.regions = [...rawConstraints.regions].sort()
  if (rawConstraints.azIds) constraints.azIds = [...rawConstraints.azIds].sort()
  if (rawConstraints.sovereignty) {
    constraints.allowedCountries = expandSovereignty(rawConstraints.sovereignty.countries ?? [], rawConstraints.sovereignty.regions ?? [])
  }
  const spec: JobSpec = {
    name: raw.name,
    args: raw.args ?? [],
    env: raw.env ?? {},
    resources,
    replicas: raw.replicas ?? 1,
    intent: raw.intent ?? 'throughput',
    strategy: raw.strategy ?? 'lowest_cost',
    constraints,
    data: (raw.data ?? []).map((input) => ({ name: input.name, location: { ...input.location }, sizeGB: input.size })),
    priority: raw.priority ?? 0,
    retries: raw.retries ?? 0,
  }
  if (raw.image !== undefined) spec.image = raw.image
  if (raw.command !== undefined) spec.command = typeof raw.command === 'string' ? [raw.command] : raw.command
  if (raw.strategy === 'custom' && raw.weights) {
    spec.weights = {
      cost: raw.weights.cost ?? 0,
      performance: raw.weights.performance ?? 0,
      reliability: raw.weights.reliability ?? 0,
      startTime: raw.weights.startTime ?? 0,
    }
  }
  if (raw.maxPricePerHour !== undefined) spec.maxPricePerHour = raw.maxPricePerHour
  if (raw.timeout !== undefined) spec.timeoutMs = raw.timeout
  if (raw.checkpoint !== undefined) spec.checkpoint = { intervalMs: raw.checkpoint.interval, keep: raw.checkpoint.keep ?? 3, replicas: raw.checkpoint.replicas ?? 1 }
  return spec
}

/** Validates an already-parsed value as a job spec; `prefix` is prepended to error paths. */
export function validateJobSpec(value: unknown, prefix: readonly PropertyKey[] = []): JobSpecResult {
  const result = jobSpecSchema.safeParse(value)
  const crossField = crossFieldErrors(value).map((error) => ({ ...error, path: prefix.length ? `${formatPath(prefix)}.${error.path}` : error.path }))
  if (!result.success || crossField.length > 0) {
    return { ok: false, errors: [...(result.success ? [] : issuesToErrors(result.error.issues, prefix)), ...crossField] }
  }
  return { ok: true, spec: normalize(result.data) }
}

/** Parses a job spec written in YAML or JSON. Refused whole on any error. */
export function parseJobSpec(text: string, source?: string): JobSpecResult {
  const parsed = parseYamlText(text, source)
  if (!parsed.ok) return parsed
  return validateJobSpec(parsed.value)
}

/** What each replica of the job needs from a node. */
export function jobDemand(spec: JobSpec): Demand {
  return spec.resources
}
