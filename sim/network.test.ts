import { describe, expect, it } from 'vitest'
import { SimNetwork } from './network.ts'
import { SeededRandom } from './random.ts'

function countDeliveries(network: SimNetwork, from: number, to: number, sends: number): { dropped: number; duplicated: number } {
  let dropped = 0
  let duplicated = 0
  for (let index = 0; index < sends; index++) {
    const delays = network.transmit(from, to)
    if (delays.length === 0) dropped++
    if (delays.length === 2) duplicated++
  }
  return { dropped, duplicated }
}

describe('SimNetwork', () => {
  it('draws base latencies in [min, max], fixed per directed link and independent of query order', () => {
    const network = new SimNetwork(200, new SeededRandom(1))
    const forward: number[] = []
    for (let from = 0; from < 200; from++) {
      for (let to = 0; to < 200; to += 7) forward.push(network.baseLatencyMs(from, to))
    }
    expect(Math.min(...forward)).toBeGreaterThanOrEqual(20)
    expect(Math.max(...forward)).toBeLessThanOrEqual(50)
    // Spread across the range, not one value.
    expect(Math.max(...forward) - Math.min(...forward)).toBeGreaterThan(25)
    // A second network from the same seed, asked in reverse order after unrelated traffic, agrees.
    const other = new SimNetwork(200, new SeededRandom(1))
    for (let index = 0; index < 100; index++) other.transmit(index % 200, (index * 13) % 200)
    const backward: number[] = []
    for (let from = 199; from >= 0; from--) {
      for (let to = 196; to >= 0; to -= 7) backward.push(other.baseLatencyMs(from, to))
    }
    expect(backward.reverse()).toEqual(forward)
    expect(other.baseLatencyMs(17, 42)).toBe(network.baseLatencyMs(17, 42))
    expect(other.baseLatencyMs(42, 17)).not.toBe(network.baseLatencyMs(17, 42))
    expect(new SimNetwork(200, new SeededRandom(2)).baseLatencyMs(17, 42)).not.toBe(network.baseLatencyMs(17, 42))
  })

  it('delivers once per send with delay in [base, base + jitter tail] when there are no faults', () => {
    const network = new SimNetwork(10, new SeededRandom(3), { jitterMs: 2 })
    const base = network.baseLatencyMs(1, 2)
    let maxDelay = 0
    let sum = 0
    for (let index = 0; index < 10_000; index++) {
      const delays = network.transmit(1, 2)
      expect(delays.length).toBe(1)
      const delay = delays[0]!
      expect(delay).toBeGreaterThanOrEqual(base)
      maxDelay = Math.max(maxDelay, delay)
      sum += delay
    }
    // Exponential jitter with mean 2: the mean sits near base + 2 and the tail stays well short of 2 * 20.
    expect(sum / 10_000 - base).toBeGreaterThan(1.8)
    expect(sum / 10_000 - base).toBeLessThan(2.2)
    expect(maxDelay).toBeLessThan(base + 40)
  })

  it('gives exactly the base latency when jitter is 0', () => {
    const network = new SimNetwork(5, new SeededRandom(4), { jitterMs: 0 })
    expect(network.transmit(0, 3)).toEqual([network.baseLatencyMs(0, 3)])
    expect(network.sampleLatencyMs(0, 3)).toBe(network.baseLatencyMs(0, 3))
  })

  it('loses about lossRate of messages', () => {
    const network = new SimNetwork(4, new SeededRandom(5), { lossRate: 0.2 })
    const { dropped } = countDeliveries(network, 0, 1, 20_000)
    expect(dropped / 20_000).toBeGreaterThan(0.19)
    expect(dropped / 20_000).toBeLessThan(0.21)
    network.setLossRate(0)
    expect(countDeliveries(network, 0, 1, 1000).dropped).toBe(0)
    network.setLossRate(1)
    expect(countDeliveries(network, 0, 1, 1000).dropped).toBe(1000)
  })

  it('duplicates into two delays at about duplicateRate', () => {
    const network = new SimNetwork(4, new SeededRandom(6), { duplicateRate: 0.1 })
    const { duplicated, dropped } = countDeliveries(network, 2, 3, 20_000)
    expect(dropped).toBe(0)
    expect(duplicated / 20_000).toBeGreaterThan(0.09)
    expect(duplicated / 20_000).toBeLessThan(0.11)
    network.setDuplicateRate(1)
    const delays = network.transmit(2, 3)
    expect(delays.length).toBe(2)
    for (const delay of delays) expect(delay).toBeGreaterThanOrEqual(network.baseLatencyMs(2, 3))
  })

  it('holds back reordered messages by up to reorderDelayMaxMs', () => {
    const network = new SimNetwork(4, new SeededRandom(7), { jitterMs: 0, reorderRate: 1, reorderDelayMaxMs: 30 })
    const base = network.baseLatencyMs(0, 1)
    let delayed = 0
    for (let index = 0; index < 1000; index++) {
      const delay = network.transmit(0, 1)[0]!
      expect(delay).toBeGreaterThanOrEqual(base)
      expect(delay).toBeLessThanOrEqual(base + 30)
      if (delay > base + 1) delayed++
    }
    expect(delayed).toBeGreaterThan(900)
    network.setReorderRate(0)
    expect(network.transmit(0, 1)).toEqual([base])
  })

  it('stretches delays by the slower endpoint', () => {
    const network = new SimNetwork(4, new SeededRandom(8), { jitterMs: 0 })
    const base01 = network.baseLatencyMs(0, 1)
    const base10 = network.baseLatencyMs(1, 0)
    network.setSlowFactor(1, 3)
    expect(network.slowFactor(1)).toBe(3)
    expect(network.slowFactor(0)).toBe(1)
    expect(network.transmit(0, 1)[0]).toBeCloseTo(base01 * 3, 9)
    expect(network.transmit(1, 0)[0]).toBeCloseTo(base10 * 3, 9)
    network.setSlowFactor(0, 5)
    expect(network.transmit(0, 1)[0]).toBeCloseTo(base01 * 5, 9)
    expect(network.transmit(2, 3)[0]).toBe(network.baseLatencyMs(2, 3))
  })

  it('partitions cut exactly the cross-group links, unlisted nodes group together, and heal restores', () => {
    const network = new SimNetwork(6, new SeededRandom(9))
    network.partition([[0, 1], [2, 3]]) // 4 and 5 form the third group
    const group = [1, 1, 2, 2, 0, 0]
    for (let from = 0; from < 6; from++) {
      for (let to = 0; to < 6; to++) {
        const same = group[from] === group[to]
        expect(network.isLinkUp(from, to)).toBe(same)
        expect(network.transmit(from, to).length).toBe(same ? 1 : 0)
      }
    }
    expect(() => network.partition([[0], [0, 1]])).toThrow()
    network.heal()
    for (let from = 0; from < 6; from++) {
      for (let to = 0; to < 6; to++) expect(network.isLinkUp(from, to)).toBe(true)
    }
  })

  it('cuts one way only, and heal removes the cut', () => {
    const network = new SimNetwork(3, new SeededRandom(10))
    network.cutOneWay(0, 1)
    expect(network.isLinkUp(0, 1)).toBe(false)
    expect(network.transmit(0, 1)).toEqual([])
    expect(network.isLinkUp(1, 0)).toBe(true)
    expect(network.transmit(1, 0).length).toBe(1)
    expect(network.isLinkUp(0, 2)).toBe(true)
    network.heal()
    expect(network.isLinkUp(0, 1)).toBe(true)
  })

  it('replays the same delays from the same seed', () => {
    const run = (): number[][] => {
      const network = new SimNetwork(20, new SeededRandom(11), { lossRate: 0.1, duplicateRate: 0.1, reorderRate: 0.2 })
      return Array.from({ length: 200 }, (_, index) => network.transmit(index % 20, (index * 7 + 3) % 20))
    }
    expect(run()).toEqual(run())
  })
})
