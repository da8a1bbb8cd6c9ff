import { describe, expect, it } from 'vitest'
import { coverageTimeMs, GossipMesh } from './gossip-mesh.ts'
import { SimNetwork } from './network.ts'
import { SeededRandom } from './random.ts'

const allUp = (): boolean => true

function isConnected(mesh: GossipMesh, nodeCount: number): boolean {
  const seen = new Uint8Array(nodeCount)
  const stack = [0]
  seen[0] = 1
  let reached = 1
  while (stack.length > 0) {
    const node = stack.pop()!
    for (const neighbour of mesh.neighbours(node)) {
      if (seen[neighbour] === 0) {
        seen[neighbour] = 1
        reached++
        stack.push(neighbour)
      }
    }
  }
  return reached === nodeCount
}

/** Bellman-Ford over the mesh with a deterministic weight per directed hop: the reference for propagate. */
function referenceArrivals(
  mesh: GossipMesh,
  nodeCount: number,
  from: number,
  weight: (u: number, v: number) => number,
  usable: (u: number, v: number) => boolean,
): number[] {
  const distance = new Array<number>(nodeCount).fill(Infinity)
  distance[from] = 0
  for (let round = 0; round < nodeCount; round++) {
    let changed = false
    for (let u = 0; u < nodeCount; u++) {
      if (distance[u] === Infinity) continue
      for (const v of mesh.neighbours(u)) {
        if (!usable(u, v)) continue
        const candidate = distance[u]! + weight(u, v)
        if (candidate < distance[v]!) {
          distance[v] = candidate
          changed = true
        }
      }
    }
    if (!changed) break
  }
  return distance
}

describe('GossipMesh', () => {
  it('gives every node at least D neighbours, symmetric links, no self loops, and a connected graph', () => {
    for (const [nodeCount, seed] of [[1000, 1], [300, 2], [37, 3]] as const) {
      const mesh = new GossipMesh(nodeCount, new SeededRandom(seed), 6)
      for (let node = 0; node < nodeCount; node++) {
        const neighbours = mesh.neighbours(node)
        expect(neighbours.length).toBeGreaterThanOrEqual(6)
        expect(neighbours.length).toBeLessThanOrEqual(14)
        expect(new Set(neighbours).size).toBe(neighbours.length)
        for (const neighbour of neighbours) {
          expect(neighbour).not.toBe(node)
          expect(mesh.neighbours(neighbour)).toContain(node)
        }
      }
      expect(isConnected(mesh, nodeCount)).toBe(true)
    }
  })

  it('builds a complete graph when there are fewer nodes than D + 1, and handles one node', () => {
    const mesh = new GossipMesh(4, new SeededRandom(4), 6)
    for (let node = 0; node < 4; node++) expect(mesh.neighbours(node).length).toBe(3)
    expect(new GossipMesh(1, new SeededRandom(4)).neighbours(0).length).toBe(0)
    const odd = new GossipMesh(50, new SeededRandom(4), 5)
    for (let node = 0; node < 50; node++) expect(odd.neighbours(node).length).toBeGreaterThanOrEqual(5)
  })

  it('builds the same mesh from the same seed', () => {
    const a = new GossipMesh(200, new SeededRandom(5))
    const b = new GossipMesh(200, new SeededRandom(5))
    const c = new GossipMesh(200, new SeededRandom(6))
    const lists = (mesh: GossipMesh): number[][] => Array.from({ length: 200 }, (_, node) => [...mesh.neighbours(node)])
    expect(lists(a)).toEqual(lists(b))
    expect(lists(a)).not.toEqual(lists(c))
  })

  it('reaches every node from the source at 0 when there are no faults', () => {
    const random = new SeededRandom(7)
    const network = new SimNetwork(1000, random.fork('network'))
    const mesh = new GossipMesh(1000, random.fork('mesh'))
    const out = new Float64Array(1000)
    mesh.propagate(123, network, allUp, out)
    expect(out[123]).toBe(0)
    let unreachable = 0
    for (let node = 0; node < 1000; node++) if (!Number.isFinite(out[node]!)) unreachable++
    expect(unreachable).toBe(0)
    // Every other node is at least one hop (>= 20 ms) away.
    for (let node = 0; node < 1000; node++) if (node !== 123) expect(out[node]!).toBeGreaterThanOrEqual(20)
  })

  it('matches a Bellman-Ford reference with deterministic latencies, slow nodes and down nodes', () => {
    const nodeCount = 60
    const network = new SimNetwork(nodeCount, new SeededRandom(8), { jitterMs: 0 })
    network.setSlowFactor(5, 4)
    network.setSlowFactor(17, 2.5)
    network.cutOneWay(0, 1)
    const down = new Set([9, 33])
    const isUp = (node: number): boolean => !down.has(node)
    const mesh = new GossipMesh(nodeCount, new SeededRandom(9), 4)
    const out = new Float64Array(nodeCount)
    const weight = (u: number, v: number): number => network.baseLatencyMs(u, v) * Math.max(network.slowFactor(u), network.slowFactor(v))
    const usable = (u: number, v: number): boolean => isUp(u) && isUp(v) && network.isLinkUp(u, v)
    for (const from of [0, 5, 41]) {
      mesh.propagate(from, network, isUp, out)
      const expected = referenceArrivals(mesh, nodeCount, from, weight, usable)
      for (let node = 0; node < nodeCount; node++) {
        if (Number.isFinite(expected[node]!)) expect(out[node]).toBeCloseTo(expected[node]!, 9)
        else expect(out[node]).toBe(Infinity)
      }
      for (const node of down) expect(out[node]).toBe(Infinity)
    }
  })

  it('repairs every lost hop one heartbeat later instead of dropping it', () => {
    const nodeCount = 40
    const network = new SimNetwork(nodeCount, new SeededRandom(10), { jitterMs: 0, lossRate: 1 })
    const mesh = new GossipMesh(nodeCount, new SeededRandom(11), 6, { heartbeatMs: 500 })
    const out = new Float64Array(nodeCount)
    mesh.propagate(3, network, allUp, out)
    const expected = referenceArrivals(mesh, nodeCount, 3, (u, v) => network.baseLatencyMs(u, v) + 500, () => true)
    for (let node = 0; node < nodeCount; node++) expect(out[node]).toBeCloseTo(expected[node]!, 9)
    for (let node = 0; node < nodeCount; node++) if (node !== 3) expect(out[node]!).toBeGreaterThanOrEqual(520)
  })

  it('gives Infinity to every node across a partition and finite times on the source side', () => {
    const nodeCount = 500
    const network = new SimNetwork(nodeCount, new SeededRandom(12))
    const mesh = new GossipMesh(nodeCount, new SeededRandom(13))
    const isolated = Array.from({ length: 100 }, (_, index) => index * 5)
    network.partition([isolated])
    const out = new Float64Array(nodeCount)
    mesh.propagate(1, network, allUp, out)
    const isolatedSet = new Set(isolated)
    for (let node = 0; node < nodeCount; node++) {
      if (isolatedSet.has(node)) expect(out[node]).toBe(Infinity)
    }
    // The 400-node remainder is a random subgraph of a degree >= 6 mesh: nearly all of it is reached.
    let reached = 0
    for (let node = 0; node < nodeCount; node++) if (Number.isFinite(out[node]!)) reached++
    expect(reached).toBeGreaterThan(390)
    expect(reached).toBeLessThanOrEqual(400)
    network.heal()
    mesh.propagate(1, network, allUp, out)
    expect(out.every(Number.isFinite)).toBe(true)
  })

  it('reaches nothing when the source is down', () => {
    const network = new SimNetwork(20, new SeededRandom(14))
    const mesh = new GossipMesh(20, new SeededRandom(15))
    const out = new Float64Array(20)
    mesh.propagate(2, network, (node) => node !== 2, out)
    expect(out[2]).toBe(0)
    for (let node = 0; node < 20; node++) if (node !== 2) expect(out[node]).toBe(Infinity)
  })
})

describe('coverageTimeMs', () => {
  it('returns the time by which the fraction of nodes has the message, monotone in fraction', () => {
    const random = new SeededRandom(16)
    const network = new SimNetwork(1000, random.fork('network'))
    const mesh = new GossipMesh(1000, random.fork('mesh'))
    const arrivals = new Float64Array(1000)
    mesh.propagate(0, network, allUp, arrivals)
    const copy = Float64Array.from(arrivals)
    const scratch = new Float64Array(1000)
    const sorted = Array.from(arrivals).sort((a, b) => a - b)
    let previous = -1
    for (const fraction of [0.001, 0.1, 0.25, 0.5, 0.9, 0.99, 1]) {
      const time = coverageTimeMs(arrivals, fraction, scratch)
      expect(time).toBe(sorted[Math.ceil(fraction * 1000) - 1])
      expect(time).toBeGreaterThanOrEqual(previous)
      previous = time
    }
    expect(coverageTimeMs(arrivals, 0)).toBe(0)
    expect(arrivals).toEqual(copy) // input untouched
  })

  it('is Infinity when the fraction was never reached, finite when it was', () => {
    const arrivals = Float64Array.from([0, 5, 3, Infinity, 9, Infinity, 1, 2, 7, 4])
    expect(coverageTimeMs(arrivals, 0.8)).toBe(9)
    expect(coverageTimeMs(arrivals, 0.81)).toBe(Infinity)
    expect(coverageTimeMs(arrivals, 1)).toBe(Infinity)
    expect(coverageTimeMs(arrivals, 0.5)).toBe(4)
  })

  it('agrees with sorting on many random arrays with duplicates', () => {
    const random = new SeededRandom(17)
    let mismatches = 0
    for (let trial = 0; trial < 500; trial++) {
      const length = random.int(1, 60)
      const values = Float64Array.from({ length }, () => (random.chance(0.1) ? Infinity : random.int(0, 10)))
      const sorted = Array.from(values).sort((a, b) => a - b)
      const fraction = random.next()
      const needed = Math.ceil(fraction * length)
      const expected = needed === 0 ? 0 : sorted[needed - 1]
      if (coverageTimeMs(values, fraction) !== expected) mismatches++
    }
    expect(mismatches).toBe(0)
  })
})
