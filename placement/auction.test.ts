// Proves the auction round's rules: second-price settlement, gangs all-or-nothing in one island,
// sovereignty/spot/GPU/label/price constraints with reasons, no over-commit within a batch,
// fairness across equal nodes, priority order, and the bid protocol (forged, duplicate, late,
// unknown bids refused; the round closes when all answered or the window ends).
import { describe, expect, it } from 'vitest'
import { AuctionRound, adaptiveBidWindowMs, type PendingJob } from './auction.ts'
import { makeBid, trustAllBids, bidSigningPayload, type Bid } from './bid.ts'
import { explainJob, renderExplanation } from './explain.ts'
import { asJobId } from './job-spec.ts'
import type { NodeOffer } from './node-offer.ts'
import { placeBatch } from './place-batch.ts'
import { job, jobSpec, offer } from './testing.ts'

describe('second-price settlement (reverse Vickrey)', () => {
  it('the winner is paid the second-best ask, not its own', () => {
    const fleet = [offer('a', { pricePerCpuHour: 0.1 }), offer('b', { pricePerCpuHour: 0.25 }), offer('c', { pricePerCpuHour: 0.4 })]
    const [award] = placeBatch([job('j', jobSpec({ resources: { cpu: 2, memory: '1Gi' } }))], fleet).awards
    expect(award!.nodeId).toBe('a')
    expect(award!.askPerHour).toBeCloseTo(0.2, 9)
    expect(award!.pricePerHour).toBeCloseTo(0.5, 9) // b's ask for 2 vCPU
  })

  it('the price paid never exceeds the job maximum: a dearer runner-up is not a bidder for the job', () => {
    const fleet = [offer('a', { pricePerCpuHour: 0.1 }), offer('b', { pricePerCpuHour: 0.3 })]
    const [award] = placeBatch([job('j', jobSpec({ maxPricePerHour: 0.2 }))], fleet).awards
    expect(award!.nodeId).toBe('a')
    expect(award!.pricePerHour).toBeCloseTo(0.1, 9)
    const atCeiling = placeBatch([job('j', jobSpec({ maxPricePerHour: 0.2 }))], [fleet[0]!, offer('c', { pricePerCpuHour: 0.2 })]).awards[0]!
    expect(atCeiling.pricePerHour).toBeCloseTo(0.2, 9)
  })

  it('a gang is paid the runner-up island mean ask (within the job maximum)', () => {
    const gangSpec = jobSpec({ replicas: 2, intent: 'tightly-coupled', maxPricePerHour: 0.25 })
    const island = (id: string, pg: string, price: number): NodeOffer => offer(id, { placementGroup: pg, capacity: { cpuMillis: 2000 }, pricePerCpuHour: price })
    const awards = placeBatch([job('g', gangSpec)], [island('a', 'pg-a', 0.1), island('b', 'pg-b', 0.24)]).awards
    expect(awards.map((award) => [award.nodeId, award.pricePerHour.toFixed(2)])).toEqual([
      ['a', '0.24'],
      ['a', '0.24'],
    ])
  })

  it('a single bidder is paid its own ask', () => {
    const [award] = placeBatch([job('j', jobSpec())], [offer('only', { pricePerCpuHour: 0.07 })]).awards
    expect(award!.pricePerHour).toBeCloseTo(0.07, 9)
  })

  it('once the cheapest node is full, the next replica pays the next price up', () => {
    const fleet = [offer('a', { pricePerCpuHour: 0.1, capacity: { cpuMillis: 1000 } }), offer('b', { pricePerCpuHour: 0.2 }), offer('c', { pricePerCpuHour: 0.3 })]
    const awards = placeBatch([job('j1', jobSpec()), job('j2', jobSpec())], fleet).awards
    expect(awards.map((award) => [award.nodeId, award.pricePerHour.toFixed(2)])).toEqual([
      ['a', '0.20'],
      ['b', '0.30'],
    ])
  })
})

describe('tightly-coupled gangs: all or nothing inside one AZ-ID island', () => {
  const gang = jobSpec({ replicas: 4, intent: 'tightly-coupled', resources: { cpu: 8, memory: '8Gi' } })
  const pgNode = (id: string, azId: string, placementGroup: string, extra: Partial<NodeOffer> = {}): NodeOffer =>
    offer(id, { azId, placementGroup, capacity: { cpuMillis: 8000 }, ...extra })

  it('places all 4 replicas in the one island that has room for 4', () => {
    const fleet = [
      pgNode('az1-a', 'use1-az1', 'pg1'),
      pgNode('az1-b', 'use1-az1', 'pg1'),
      pgNode('az1-c', 'use1-az1', 'pg1'),
      pgNode('az2-a', 'use1-az2', 'pg2'),
      pgNode('az2-b', 'use1-az2', 'pg2'),
      pgNode('az2-c', 'use1-az2', 'pg2'),
      pgNode('az2-d', 'use1-az2', 'pg2'),
    ]
    const result = placeBatch([job('g', gang)], fleet)
    expect(result.pending).toEqual([])
    expect(result.awards.map((award) => award.nodeId).sort()).toEqual(['az2-a', 'az2-b', 'az2-c', 'az2-d'])
  })

  it('places nothing when no island has 4 (8 free nodes split 3 + 3 + 2), and says why', () => {
    const fleet = [
      pgNode('az1-a', 'use1-az1', 'pg1'),
      pgNode('az1-b', 'use1-az1', 'pg1'),
      pgNode('az1-c', 'use1-az1', 'pg1'),
      pgNode('az2-a', 'use1-az2', 'pg2'),
      pgNode('az2-b', 'use1-az2', 'pg2'),
      pgNode('az2-c', 'use1-az2', 'pg2'),
      // Same AZ-ID as pg1 but another placement group: not the same island.
      pgNode('az1-x', 'use1-az1', 'pg-other'),
      pgNode('az1-y', 'use1-az1', 'pg-other'),
    ]
    const result = placeBatch([job('g', gang)], fleet)
    expect(result.awards).toEqual([])
    expect(result.pending).toEqual([{ jobId: 'g', replicas: [0, 1, 2, 3], reason: { kind: 'gang_no_island', replicas: 4, bestIslandSlots: 3, islands: 3 } }])
  })

  it('nodes without a placement group never join a multi-node gang', () => {
    const fleet = ['a', 'b', 'c', 'd'].map((id) => offer(id, { capacity: { cpuMillis: 8000 } }))
    const result = placeBatch([job('g', gang)], fleet)
    expect(result.awards).toEqual([])
    expect(result.pending[0]!.reason.kind).toBe('gang_no_island')
  })

  it('a big node may hold the whole gang; among equal islands the EFA one wins', () => {
    const big = { capacity: { cpuMillis: 32_000, memoryMiB: 64 * 1024 } }
    const fleet = [offer('plain', { placementGroup: 'pg-a', ...big }), offer('with-efa', { placementGroup: 'pg-b', efa: true, ...big })]
    const result = placeBatch([job('g', gang)], fleet)
    expect(result.awards.map((award) => award.nodeId)).toEqual(['with-efa', 'with-efa', 'with-efa', 'with-efa'])
  })
})

describe('hard constraints', () => {
  const us = offer('us-node', { pricePerCpuHour: 0.01 })
  const usSpot = offer('us-spot', { spot: true, pricePerCpuHour: 0.005 })
  const de = offer('de-node', { provider: 'hetzner', region: 'fsn1', azId: 'fsn1-dc14', country: 'DE', pricePerCpuHour: 0.04 })
  const deSpot = offer('de-spot', { provider: 'hetzner', region: 'fsn1', azId: 'fsn1-dc14', country: 'DE', spot: true, pricePerCpuHour: 0.02 })

  it('sovereignty keeps an EU-only job off US nodes even when they are cheaper', () => {
    const result = placeBatch([job('j', jobSpec({ constraints: { sovereignty: { regions: ['EU'] } } }))], [us, de])
    expect(result.awards.map((award) => award.nodeId)).toEqual(['de-node'])
  })

  it('on-demand only keeps a job off spot nodes', () => {
    const result = placeBatch([job('j', jobSpec({ constraints: { spotAllowed: false } }))], [usSpot, deSpot, us, de])
    expect(result.awards.map((award) => award.nodeId)).toEqual(['us-node'])
  })

  it('EU-only and on-demand together: the only EU on-demand node', () => {
    const result = placeBatch([job('j', jobSpec({ constraints: { sovereignty: { countries: ['DE', 'FR'] }, spotAllowed: false } }))], [usSpot, deSpot, us, de])
    expect(result.awards.map((award) => award.nodeId)).toEqual(['de-node'])
  })

  it('nothing feasible: the job stays pending, with counts per constraint and an example', () => {
    const result = placeBatch([job('j', jobSpec({ constraints: { sovereignty: { countries: ['FR'] }, spotAllowed: false } }))], [usSpot, deSpot, us, de])
    expect(result.awards).toEqual([])
    expect(result.pending).toEqual([
      { jobId: 'j', replicas: [0], reason: { kind: 'no_feasible_node', byConstraint: { spot: 2, sovereignty: 2 }, example: { kind: 'sovereignty', country: 'DE', allowed: ['FR'] } } },
    ])
  })

  it('GPU model, GPU memory, labels, provider and price each exclude with their own reason', () => {
    const a100 = offer('a100', { capacity: { gpuCount: 8 }, gpu: { model: 'A100', memoryMiB: 40 * 1024 }, labels: { tier: 'gpu' } })
    const h100 = offer('h100', { capacity: { gpuCount: 8 }, gpu: { model: 'H100', memoryMiB: 80 * 1024 }, labels: { tier: 'gpu' }, pricePerCpuHour: 5 })
    const cpuOnly = offer('cpu-only', { labels: { tier: 'gpu' } })
    const spec = jobSpec({ resources: { cpu: 1, memory: '1Gi', gpu: { count: 1, model: ['H100', 'A100'], minMemory: '80Gi' } }, constraints: { labels: { tier: 'gpu' } }, maxPricePerHour: 1 })
    const round = new AuctionRound({ roundId: 'r', leaderId: 'l', nowMs: 0, jobs: [job('j', spec)], offers: [a100, h100, cpuOnly], options: { verify: trustAllBids } })
    const result = round.close(0)
    const rows = explainJob(result, asJobId('j'))!.rows
    const reasons = Object.fromEntries(rows.map((row) => [row.nodeId, row.excluded?.kind]))
    expect(reasons).toEqual({ a100: 'gpu_memory', h100: 'max_price', 'cpu-only': 'gpu_model' })
    const labelled = placeBatch([job('k', jobSpec({ constraints: { labels: { tier: 'web' }, providers: ['aws'] } }))], [a100, de])
    expect(labelled.pending[0]!.reason).toMatchObject({ byConstraint: { label: 1, provider: 1 } })
  })
})

describe('capacity accounting and fairness across a batch', () => {
  it('spreads equal-price jobs by free room: one job per round lands on the emptiest node, not always the first', () => {
    let fleet = ['a', 'b', 'c', 'd', 'e'].map((id) => offer(id, { capacity: { cpuMillis: 8_000, memoryMiB: 16_384 } }))
    const placedOn: string[] = []
    for (let index = 0; index < 20; index++) {
      const [award] = placeBatch([job(`j${index}`, jobSpec({ resources: { cpu: 1, memory: '1Gi' } }))], fleet).awards
      placedOn.push(award!.nodeId)
      // The next round's offers: the winner has less room (as the leader's accounting says after an award).
      fleet = fleet.map((node) => (node.nodeId === award!.nodeId ? { ...node, free: { ...node.free, cpuMillis: node.free.cpuMillis - 1_000, memoryMiB: node.free.memoryMiB - 1_024 } } : node))
    }
    const perNode = new Map<string, number>()
    for (const node of placedOn) perNode.set(node, (perNode.get(node) ?? 0) + 1)
    expect([...perNode.values()]).toEqual([4, 4, 4, 4, 4])
    // Among equals the emptiest goes first: a node with more room takes the next job.
    const roomier = fleet.map((node) => (node.nodeId === 'd' ? { ...node, free: { ...node.free, cpuMillis: node.free.cpuMillis + 2_000, memoryMiB: node.free.memoryMiB + 2_048 } } : node))
    expect(placeBatch([job('next', jobSpec({ resources: { cpu: 1, memory: '1Gi' } }))], roomier).awards[0]!.nodeId).toBe('d')
  })


  it('never over-commits a node: awarded demand per node stays within its free capacity', () => {
    const fleet = [
      offer('small', { capacity: { cpuMillis: 3000, memoryMiB: 8192 }, pricePerCpuHour: 0.01 }),
      offer('big', { capacity: { cpuMillis: 16_000, memoryMiB: 8192 } }),
      offer('big2', { capacity: { cpuMillis: 16_000, memoryMiB: 8192 } }),
    ]
    const jobs: PendingJob[] = []
    for (let index = 0; index < 40; index++) jobs.push(job(`j${index}`, jobSpec({ resources: { cpu: '700m', memory: '1Gi' } })))
    const result = placeBatch(jobs, fleet)
    const used = new Map<string, { cpu: number; memory: number }>()
    for (const award of result.awards) {
      const entry = used.get(award.nodeId) ?? { cpu: 0, memory: 0 }
      entry.cpu += 700
      entry.memory += 1024
      used.set(award.nodeId, entry)
    }
    for (const node of fleet) {
      const entry = used.get(node.nodeId)!
      expect(entry.cpu).toBeLessThanOrEqual(node.free.cpuMillis)
      expect(entry.memory).toBeLessThanOrEqual(node.free.memoryMiB)
    }
    // small: cpu binds, 4 x 700m = 2800m of 3000m; big and big2: memory binds at 8 GiB -> 8 replicas each.
    expect(used.get('small')!.cpu).toBe(2800)
    expect(used.get('big')!.memory).toBe(8192)
    expect(used.get('big2')!.memory).toBe(8192)
    expect(result.awards).toHaveLength(20)
    expect(result.pending).toHaveLength(20)
    expect(result.pending[0]!.reason).toEqual({ kind: 'capacity_exhausted', resource: 'memory', candidates: 3 })
  })

  it('spreads equal jobs evenly over equal nodes instead of piling onto the first', () => {
    const fleet = ['n1', 'n2', 'n3', 'n4'].map((id) => offer(id))
    const jobs = Array.from({ length: 12 }, (_, index) => job(`j${index}`, jobSpec()))
    const perNode = new Map<string, number>()
    for (const award of placeBatch(jobs, fleet).awards) perNode.set(award.nodeId, (perNode.get(award.nodeId) ?? 0) + 1)
    expect(Object.fromEntries(perNode)).toEqual({ n1: 3, n2: 3, n3: 3, n4: 3 })
  })

  it('higher priority jobs are served first when capacity is short', () => {
    const fleet = [offer('only', { capacity: { cpuMillis: 2000 } })]
    const jobs = [job('low-1', jobSpec()), job('low-2', jobSpec()), job('high', jobSpec({ priority: 10 }))]
    const result = placeBatch(jobs, fleet)
    expect(result.awards.map((award) => award.jobId)).toEqual(['high', 'low-1'])
    expect(result.pending.map((entry) => entry.jobId)).toEqual(['low-2'])
  })

  it('jobs deferred by the per-round class limit are placed in a following round against the capacity left', () => {
    const fleet = [offer('n', { capacity: { cpuMillis: 3000 } })]
    const jobs = [job('a', jobSpec({ resources: { cpu: 1, memory: '1Gi' } })), job('b', jobSpec({ resources: { cpu: 1, memory: '2Gi' } })), job('c', jobSpec({ resources: { cpu: 2, memory: '1Gi' } }))]
    const result = placeBatch(jobs, fleet, { limits: { maxClassesPerRound: 1 } })
    expect(result.rounds).toHaveLength(3)
    expect(result.awards.map((award) => award.jobId)).toEqual(['a', 'b'])
    // The node could run c when empty: c waits for room (capacity_exhausted), it is not unfit.
    expect(result.pending.map((entry) => [entry.jobId, entry.reason.kind])).toEqual([['c', 'capacity_exhausted']])
  })

  it('tells a job too big for every node (no_feasible_node) from one waiting for room (capacity_exhausted)', () => {
    const fleet = [offer('small', { capacity: { cpuMillis: 2000 }, free: { cpuMillis: 0 } })]
    const result = placeBatch([job('huge', jobSpec({ resources: { cpu: 4, memory: '1Gi' } })), job('waits', jobSpec({ resources: { cpu: 1, memory: '1Gi' } }))], fleet)
    expect(result.pending.map((entry) => [entry.jobId, entry.reason.kind])).toEqual([['huge', 'no_feasible_node'], ['waits', 'capacity_exhausted']])
  })
})

describe('the bid protocol', () => {
  const fleet = [offer('a', { pricePerCpuHour: 0.1 }), offer('b', { pricePerCpuHour: 0.2 }), offer('far', { country: 'BR', region: 'sa-east-1', azId: 'sae1-az1' })]
  const jobs = [job('j', jobSpec({ constraints: { sovereignty: { countries: ['US'] } } }))]
  const sign = (payload: string): string => `sig:${payload.length}:${payload.slice(0, 24)}`
  const verify = (bid: Bid): boolean => bid.signature === sign(bidSigningPayload(bid))
  const open = (): AuctionRound => new AuctionRound({ roundId: 'r1', leaderId: 'leader', nowMs: 1000, jobs, offers: fleet, options: { verify, bidWindowMs: 40 } })
  const bidOf = (round: AuctionRound, node: NodeOffer, nowMs = 1010): Bid => makeBid(node, round.call, nowMs, undefined, sign)!

  it('invites only nodes that pass some class prefilter', () => {
    expect([...open().eligible].sort()).toEqual(['a', 'b'])
  })

  it('refuses a forged bid (bad signature) and still accepts the real one afterwards', () => {
    const round = open()
    const forged: Bid = { ...bidOf(round, fleet[0]!), asks: [{ classId: 0, askPerHour: 0.001 }] }
    expect(round.receiveBid(forged, 1010)).toEqual({ ok: false, reason: { kind: 'bad_signature', nodeId: 'a' } })
    expect(round.receiveBid(bidOf(round, fleet[0]!), 1011)).toEqual({ ok: true })
    expect(round.receiveBid(bidOf(round, fleet[0]!), 1012)).toEqual({ ok: false, reason: { kind: 'duplicate', nodeId: 'a' } })
    const [award] = round.close(1050).awards
    expect(award!.askPerHour).toBeCloseTo(0.1, 9) // the forged 0.001 ask played no part
  })

  it('refuses bids from other rounds, non-eligible nodes, late bids, lying attributes and malformed asks', () => {
    const round = open()
    expect(round.receiveBid({ ...bidOf(round, fleet[0]!), roundId: 'r0' }, 1010).ok).toBe(false)
    const farBid = makeBid({ ...fleet[2]!, country: 'US' }, round.call, 1010, undefined, sign)!
    expect(round.receiveBid({ ...farBid, nodeId: fleet[2]!.nodeId }, 1010)).toEqual({ ok: false, reason: { kind: 'not_eligible', nodeId: 'far' } })
    const lying = makeBid({ ...fleet[1]!, azId: 'use1-az9' }, round.call, 1010, undefined, sign)!
    expect(round.receiveBid(lying, 1010)).toEqual({ ok: false, reason: { kind: 'attribute_mismatch', field: 'azId' } })
    const inflated = makeBid({ ...fleet[1]!, free: { ...fleet[1]!.free, cpuMillis: 1_000_000 } }, round.call, 1010, undefined, sign)!
    expect(round.receiveBid(inflated, 1010)).toEqual({ ok: false, reason: { kind: 'attribute_mismatch', field: 'free.cpuMillis' } })
    const malformed = bidOf(round, fleet[1]!)
    const unknownClass = { ...malformed, asks: [{ classId: 7, askPerHour: 1 }] }
    expect(round.receiveBid({ ...unknownClass, signature: sign(bidSigningPayload(unknownClass)) }, 1010)).toMatchObject({ ok: false, reason: { kind: 'malformed' } })
    expect(round.receiveBid(bidOf(round, fleet[1]!, 1041), 1041)).toEqual({ ok: false, reason: { kind: 'late', receivedAtMs: 1041, closesAtMs: 1040 } })
  })

  it('closes when every eligible bidder answered, or when the window ends', () => {
    const round = open()
    expect(round.shouldClose(1010)).toBe(false)
    round.receiveBid(bidOf(round, fleet[0]!), 1010)
    expect(round.shouldClose(1020)).toBe(false)
    expect(round.shouldClose(1040)).toBe(true) // window over with one answer missing
    round.receiveBid(bidOf(round, fleet[1]!), 1020)
    expect(round.shouldClose(1020)).toBe(true) // everyone answered
    const result = round.close(1020)
    expect(result.bidLatenciesMs).toEqual([10, 20])
  })

  it('adapts the bid window to recent latencies within bounds', () => {
    expect(adaptiveBidWindowMs([])).toBe(250)
    expect(adaptiveBidWindowMs([2, 3, 4])).toBe(20)
    expect(adaptiveBidWindowMs(Array.from({ length: 100 }, (_, index) => index))).toBe(143)
    expect(adaptiveBidWindowMs([5_000])).toBe(250)
  })
})

describe('explain records', () => {
  it('list every node: candidates with scores, excluded nodes with the constraint, non-bidders, the winner and price', () => {
    const fleet = [
      offer('cheap', { pricePerCpuHour: 0.01 }),
      offer('dear', { pricePerCpuHour: 0.02 }),
      offer('spot', { spot: true, pricePerCpuHour: 0.001 }),
      offer('full', { free: { cpuMillis: 0 } }),
      offer('silent', { pricePerCpuHour: 0.001 }),
    ]
    const spec = jobSpec({ constraints: { spotAllowed: false } })
    const round = new AuctionRound({ roundId: 'r', leaderId: 'l', nowMs: 0, jobs: [job('j', spec)], offers: fleet, options: { verify: trustAllBids } })
    for (const node of fleet) if (node.nodeId !== 'silent') { const bid = makeBid(node, round.call, 0); if (bid) round.receiveBid(bid, 0) }
    const record = explainJob(round.close(60), asJobId('j'))!
    const byNode = Object.fromEntries(record.rows.map((row) => [row.nodeId, row]))
    expect(byNode.cheap).toMatchObject({ awarded: 1, askPerHour: 0.01, score: 1 })
    expect(byNode.dear!.score).toBeCloseTo(0.011 / 0.021, 9)
    expect(byNode.spot!.excluded).toEqual({ kind: 'spot' })
    expect(byNode.full!.excluded).toEqual({ kind: 'resources', resource: 'cpu', need: 1000, free: 0, unit: 'millicores' })
    expect(byNode.silent!.excluded).toEqual({ kind: 'no_bid' })
    expect(record.awards).toMatchObject([{ nodeId: 'cheap', pricePerHour: 0.02 }])
    const text = renderExplanation(record)
    expect(text).toMatch(/spot node, job is on-demand only/)
    expect(text).toMatch(/cpu: needs 1000 millicores, 0 free/)
    expect(text).toMatch(/replica 0 -> cheap: ask \$0\.0100\/h, pays \$0\.0200\/h/)
  })
})
