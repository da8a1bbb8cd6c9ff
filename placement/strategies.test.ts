// Proves each strategy picks the node it should on small hand-made fleets, and that
// high_availability spreads replicas over distinct providers/regions while throughput spreads
// over equal nodes and balanced packs a few per node.
import { describe, expect, it } from 'vitest'
import { placeBatch } from './place-batch.ts'
import { job, jobSpec, offer } from './testing.ts'

const cheapSpotSlow = offer('cheap-spot-slow', { spot: true, pricePerCpuHour: 0.02, performanceScore: 0.8, reliability: { uptime: 0.9, interruptions: 5 }, startDelayMs: 120_000 })
const midOnDemand = offer('mid-od', { pricePerCpuHour: 0.03, performanceScore: 1.0, reliability: { uptime: 0.999, interruptions: 0 } })
const fastExpensive = offer('fast-expensive', { pricePerCpuHour: 0.08, performanceScore: 2.0, reliability: { uptime: 0.99, interruptions: 0 } })
const fleet = [fastExpensive, cheapSpotSlow, midOnDemand]

const winnerOf = (strategy: string, extra: Record<string, unknown> = {}): string => {
  const result = placeBatch([job('j', jobSpec({ strategy, ...extra }))], fleet)
  expect(result.awards).toHaveLength(1)
  return result.awards[0]!.nodeId
}

describe('strategy choices', () => {
  it('lowest_cost takes the cheapest node, whatever its speed or reliability', () => {
    expect(winnerOf('lowest_cost')).toBe('cheap-spot-slow')
  })

  it('best_performance takes the fastest node despite its price', () => {
    expect(winnerOf('best_performance')).toBe('fast-expensive')
  })

  it('balanced trades cost against speed and reliability: the reliable mid-priced node', () => {
    expect(winnerOf('balanced')).toBe('mid-od')
  })

  it('high_availability prefers the reliable on-demand node over the cheap flaky spot one', () => {
    expect(winnerOf('high_availability')).toBe('mid-od')
  })

  it('custom weights are honoured: all on reliability picks the most reliable node', () => {
    expect(winnerOf('custom', { weights: { reliability: 1 } })).toBe('mid-od')
    expect(winnerOf('custom', { weights: { performance: 1, cost: 0 } })).toBe('fast-expensive')
    expect(winnerOf('custom', { weights: { cost: 5, startTime: 0 } })).toBe('cheap-spot-slow')
  })

  it('transfer cost counts: a dearer node next to the data beats a cheaper one across providers', () => {
    const nearData = offer('near-data', { pricePerCpuHour: 0.05, azId: 'use1-az2' })
    const farCheap = offer('far-cheap', { provider: 'gcp', region: 'us-central1', azId: 'usc1-a', pricePerCpuHour: 0.01 })
    const spec = jobSpec({ data: [{ name: 'd', location: { provider: 'aws', region: 'us-east-1', azId: 'use1-az2' }, size: '100GB' }], timeout: '10h' })
    // far: 0.01 + 100 GB x $0.09 / 10 h = $0.91/h; near: $0.05/h, same AZ-ID so free.
    const result = placeBatch([job('j', spec)], [farCheap, nearData])
    expect(result.awards[0]!.nodeId).toBe('near-data')
    expect(result.awards[0]!.costPerHour).toBeCloseTo(0.05, 6)
  })
})

describe('spreading by intent and strategy', () => {
  const identical = ['n1', 'n2', 'n3', 'n4'].map((id) => offer(id))

  it('throughput puts replicas of a job on distinct equal nodes', () => {
    const result = placeBatch([job('j', jobSpec({ replicas: 4, resources: { cpu: 1, memory: '1Gi' } }))], identical)
    expect(new Set(result.awards.map((award) => award.nodeId)).size).toBe(4)
  })

  it('balanced packs two replicas per node before moving on', () => {
    const result = placeBatch([job('j', jobSpec({ replicas: 4, intent: 'balanced', resources: { cpu: 1, memory: '1Gi' } }))], identical)
    const perNode = new Map<string, number>()
    for (const award of result.awards) perNode.set(award.nodeId, (perNode.get(award.nodeId) ?? 0) + 1)
    expect([...perNode.values()]).toEqual([2, 2])
  })

  it('high_availability spreads 3 replicas over 3 provider/regions even when one region is cheaper', () => {
    const fleetHa = [
      offer('aws-use1-a', { pricePerCpuHour: 0.01 }),
      offer('aws-use1-b', { pricePerCpuHour: 0.01 }),
      offer('aws-use1-c', { pricePerCpuHour: 0.01 }),
      offer('aws-euw1-a', { region: 'eu-west-1', azId: 'euw1-az1', country: 'IE', pricePerCpuHour: 0.03 }),
      offer('gcp-usc1-a', { provider: 'gcp', region: 'us-central1', azId: 'usc1-a', pricePerCpuHour: 0.04 }),
    ]
    const result = placeBatch([job('j', jobSpec({ replicas: 3, strategy: 'high_availability' }))], fleetHa)
    expect(result.awards.map((award) => award.nodeId).sort()).toEqual(['aws-euw1-a', 'aws-use1-a', 'gcp-usc1-a'])
  })

  it('high_availability with more replicas than domains starts a second lap over the domains', () => {
    const fleetHa = [offer('a1'), offer('a2'), offer('b1', { region: 'eu-west-1', azId: 'euw1-az1' }), offer('b2', { region: 'eu-west-1', azId: 'euw1-az1' })]
    const result = placeBatch([job('j', jobSpec({ replicas: 4, strategy: 'high_availability' }))], fleetHa)
    const regions = result.awards.map((award) => (award.nodeId.startsWith('a') ? 'us' : 'eu'))
    expect(regions.filter((region) => region === 'us')).toHaveLength(2)
    expect(regions.filter((region) => region === 'eu')).toHaveLength(2)
  })
})
