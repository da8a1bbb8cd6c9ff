// Workload descriptions for simulations and benchmarks: a YAML list of job templates, each with
// a weight, an inline job spec and an optional arrival rate; `expandWorkload` turns one into a
// deterministic list of pending jobs (smooth weighted round robin, no randomness).
import { z } from 'zod'
import type { PendingJob } from './auction.ts'
import { asJobId, issuesToErrors, parseYamlText, validateJobSpec, type JobSpec, type SpecError } from './job-spec.ts'

export interface JobTemplate {
  name: string
  weight: number
  /** Arrivals per second, when the simulator drives the workload over time. */
  ratePerSecond?: number
  spec: JobSpec
}

export interface Workload {
  name: string
  templates: JobTemplate[]
}

export type WorkloadResult = { ok: true; workload: Workload } | { ok: false; errors: SpecError[] }

export const workloadLimits = { maxTemplates: 1_000 } as const

const workloadSchema = z.strictObject({
  name: z.string().min(1).optional(),
  jobs: z
    .array(
      z.strictObject({
        name: z.string().min(1).optional(),
        weight: z.number().positive('expected a weight above zero').optional(),
        rate: z.number().positive('expected arrivals per second above zero').optional(),
        spec: z.unknown(),
      }),
    )
    .min(1, 'expected at least one job template')
    .max(workloadLimits.maxTemplates),
})

/** Parses a workload; each template's spec is validated as a job spec (paths like `jobs[1].spec.resources.cpu`). */
export function parseWorkload(text: string, source = 'workload'): WorkloadResult {
  const parsed = parseYamlText(text, source)
  if (!parsed.ok) return parsed
  const result = workloadSchema.safeParse(parsed.value)
  if (!result.success) return { ok: false, errors: issuesToErrors(result.error.issues) }
  const errors: SpecError[] = []
  const templates: JobTemplate[] = []
  result.data.jobs.forEach((entry, index) => {
    const spec = validateJobSpec(entry.spec, ['jobs', index, 'spec'])
    if (!spec.ok) {
      errors.push(...spec.errors)
      return
    }
    const template: JobTemplate = { name: entry.name ?? spec.spec.name, weight: entry.weight ?? 1, spec: spec.spec }
    if (entry.rate !== undefined) template.ratePerSecond = entry.rate
    templates.push(template)
  })
  if (errors.length > 0) return { ok: false, errors }
  return { ok: true, workload: { name: result.data.name ?? source, templates } }
}

/**
 * `count` jobs drawn from the templates in proportion to their weights, in a fixed interleaved
 * order. Jobs of one template share its spec object (so the auction classifies them once).
 */
export function expandWorkload(workload: Workload, count: number, idPrefix = 'job'): PendingJob[] {
  const templates = workload.templates
  const totalWeight = templates.reduce((sum, template) => sum + template.weight, 0)
  const credit = new Float64Array(templates.length)
  const jobs: PendingJob[] = []
  for (let index = 0; index < count; index++) {
    let best = 0
    for (let t = 0; t < templates.length; t++) {
      credit[t]! += templates[t]!.weight
      if (credit[t]! > credit[best]!) best = t
    }
    credit[best]! -= totalWeight
    jobs.push({ jobId: asJobId(`${idPrefix}-${String(index).padStart(6, '0')}`), spec: templates[best]!.spec })
  }
  return jobs
}
