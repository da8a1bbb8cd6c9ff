// Proves the job spec is validated and normalized as documented: the examples parse, units are
// normalized, defaults apply, and every invalid example is refused with the right field paths.
import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseJobSpec, parseDurationMs } from './job-spec.ts'
import { parseFleet } from './fleet.ts'
import { expandWorkload, parseWorkload } from './workload.ts'

const examples = new URL('../examples/', import.meta.url)
const read = (name: string): string => readFileSync(new URL(name, examples), 'utf8')
const pathsOf = (text: string, source?: string): string[] => {
  const result = parseJobSpec(text, source)
  if (result.ok) throw new Error('expected the spec to be refused')
  return result.errors.map((error) => error.path).sort()
}

describe('valid specs', () => {
  const names = readdirSync(examples).filter((name) => name.startsWith('job-'))
  it('finds the example specs', () => expect(names.length).toBeGreaterThanOrEqual(4))
  for (const name of names) {
    it(`parses examples/${name}`, () => {
      const result = parseJobSpec(read(name), name)
      expect(result.ok ? [] : result.errors).toEqual([])
    })
  }

  it('normalizes units: cpu to millicores, memory and disk to MiB, durations to ms, data to GB', () => {
    const result = parseJobSpec(read('job-gpu-training.yaml'))
    if (!result.ok) throw new Error('expected ok')
    const spec = result.spec
    expect(spec.resources).toEqual({ cpuMillis: 16_000, memoryMiB: 128 * 1024, diskMiB: 200 * 1024, gpuCount: 2, gpuModels: ['A100', 'H100'], gpuMinMemoryMiB: 40 * 1024 })
    expect(spec.intent).toBe('tightly-coupled')
    expect(spec.replicas).toBe(4)
    expect(spec.timeoutMs).toBe(12 * 3_600_000)
    expect(spec.checkpoint).toEqual({ intervalMs: 15 * 60_000, keep: 3, replicas: 1 })
    expect(spec.data[0]).toEqual({ name: 'training-corpus', location: { provider: 'aws', region: 'us-east-1', azId: 'use1-az1' }, sizeGB: 500 })
    expect(spec.constraints.spotAllowed).toBe(false)
  })

  it('applies defaults: 1 replica, throughput, lowest_cost, spot allowed, 0 retries, priority 0', () => {
    const result = parseJobSpec('name: tiny\ncommand: sleep\nargs: [10]\nresources: { cpu: "250m", memory: 64 }\n')
    if (!result.ok) throw new Error(JSON.stringify(result.errors))
    expect(result.spec).toMatchObject({ replicas: 1, intent: 'throughput', strategy: 'lowest_cost', retries: 0, priority: 0, args: ['10'], command: ['sleep'] })
    expect(result.spec.constraints.spotAllowed).toBe(true)
    expect(result.spec.resources.cpuMillis).toBe(250)
    expect(result.spec.resources.memoryMiB).toBe(64)
  })

  it('accepts JSON and expands sovereignty groups into country codes', () => {
    const result = parseJobSpec(JSON.stringify({ name: 'eu', image: 'x', resources: { cpu: 1, memory: '1G' }, constraints: { sovereignty: { regions: ['EU'], countries: ['ch'] } } }))
    if (!result.ok) throw new Error(JSON.stringify(result.errors))
    expect(result.spec.constraints.allowedCountries).toContain('DE')
    expect(result.spec.constraints.allowedCountries).toContain('CH')
    expect(result.spec.constraints.allowedCountries).not.toContain('US')
    expect(result.spec.resources.memoryMiB).toBe(954) // 1 GB = 10^9 bytes, rounded up to MiB
  })

  it('parses durations with several units', () => {
    expect(parseDurationMs('1h30m')).toBe(5_400_000)
    expect(parseDurationMs('250ms')).toBe(250)
    expect(parseDurationMs('soon')).toBeUndefined()
  })
})

describe('invalid specs are refused whole, each error naming its field', () => {
  it('examples/invalid/bad-resources.yaml', () => {
    expect(pathsOf(read('invalid/bad-resources.yaml'))).toEqual(['replicas', 'resources.cpu', 'resources.memory', 'restartPolicy', 'strategy'])
    const result = parseJobSpec(read('invalid/bad-resources.yaml'))
    if (result.ok) throw new Error('expected refusal')
    expect(result.errors.find((error) => error.path === 'resources.memory')!.message).toMatch(/"4Gi".*got "12 parsecs"/)
    expect(result.errors.find((error) => error.path === 'restartPolicy')!.message).toBe('unknown field')
  })

  it('examples/invalid/bad-constraints.yaml', () => {
    expect(pathsOf(read('invalid/bad-constraints.yaml'))).toEqual([
      'constraints.sovereignty.regions[0]',
      'constraints.spotAllowed',
      'data[0].size',
      'image',
      'name',
      'resources.gpu.count',
      'weights',
    ])
  })

  it('examples/invalid/bad-syntax.yaml reports a syntax error with its line', () => {
    const result = parseJobSpec(read('invalid/bad-syntax.yaml'), 'bad-syntax.yaml')
    if (result.ok) throw new Error('expected refusal')
    expect(result.errors[0]!.path).toBe('(syntax)')
    expect(result.errors[0]!.message).toMatch(/bad-syntax\.yaml: .*line \d+/)
  })

  it('a missing resources block and a non-object document', () => {
    expect(pathsOf('name: x\nimage: y\n')).toEqual(['resources'])
    expect(pathsOf('just a string')).toEqual(['(root)'])
  })

  it('weights without the custom strategy', () => {
    expect(pathsOf('name: x\nimage: y\nresources: {cpu: 1, memory: 1Gi}\nweights: {cost: 1}\n')).toEqual(['weights'])
  })
})

describe('fleet and workload files', () => {
  it('examples/fleet.yaml expands into about 50 nodes with deterministic ids', () => {
    const fleet = parseFleet(read('fleet.yaml'))
    if (!fleet.ok) throw new Error(JSON.stringify(fleet.errors))
    expect(fleet.offers.length).toBeGreaterThanOrEqual(45)
    expect(fleet.offers.length).toBeLessThanOrEqual(60)
    expect(fleet.offers[0]!.nodeId).toBe('aws-use1-az1-spot-0000')
    expect(new Set(fleet.offers.map((offer) => offer.nodeId)).size).toBe(fleet.offers.length)
    expect(new Set(fleet.offers.map((offer) => offer.provider))).toEqual(new Set(['aws', 'gcp', 'azure', 'lambda', 'nosana']))
  })

  it('a fleet error names its path', () => {
    const fleet = parseFleet('groups:\n  - { count: 1, provider: aws, region: mars-1, azIds: [m1], shape: { cpu: 1, memory: 1Gi } }\n')
    if (fleet.ok) throw new Error('expected refusal')
    expect(fleet.errors.map((error) => error.path).sort()).toEqual(['groups[0].country', 'groups[0].pricePerHour'])
  })

  it('workloads parse, report nested spec paths, and expand by weight deterministically', () => {
    for (const name of ['mixed.yaml', 'lowest-cost.yaml']) {
      const workload = parseWorkload(read(name))
      expect(workload.ok ? [] : workload.errors).toEqual([])
    }
    const bad = parseWorkload('jobs:\n  - spec: { name: a, image: b, resources: { cpu: 1, memory: lots } }\n')
    expect(bad.ok ? [] : bad.errors.map((error) => error.path)).toEqual(['jobs[0].spec.resources.memory'])
    const workload = parseWorkload(read('lowest-cost.yaml'))
    if (!workload.ok) throw new Error('expected ok')
    const jobs = expandWorkload(workload.workload, 110)
    const counts = new Map<string, number>()
    for (const job of jobs) counts.set(job.spec.name, (counts.get(job.spec.name) ?? 0) + 1)
    expect(Object.fromEntries(counts)).toEqual({ web: 50, worker: 30, etl: 20, 'eu-batch': 10 })
    expect(expandWorkload(workload.workload, 110).map((job) => job.spec.name)).toEqual(jobs.map((job) => job.spec.name))
  })
})
