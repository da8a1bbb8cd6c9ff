// A model of gossipsub dissemination for one topic: a random mesh of degree about D over the
// simulated network, and a Dijkstra pass giving each node's earliest arrival time for one
// publish. Lost hops are repaired one heartbeat later, as IHAVE/IWANT gossip would.
import assert from 'node:assert/strict'
import type { SimNetwork } from './network.ts'
import type { SeededRandom } from './random.ts'

export interface GossipMeshOptions {
  /** Delay a lost hop pays before gossip (IHAVE/IWANT) repairs it. */
  heartbeatMs: number
}

export const defaultGossipMeshOptions: GossipMeshOptions = { heartbeatMs: 1000 }

export class GossipMesh {
  readonly nodeCount: number
  readonly degree: number
  readonly heartbeatMs: number
  /** Neighbours of node i are neighbourList[offsets[i] .. offsets[i + 1]). */
  private readonly offsets: Int32Array
  private readonly neighbourList: Int32Array
  private readonly random: SeededRandom
  // Reused between propagate calls: each directed edge is relaxed at most once, so the
  // heap never holds more than edges + 1 entries.
  private readonly settled: Uint8Array
  private readonly heapNodes: Int32Array
  private readonly heapTimes: Float64Array

  constructor(nodeCount: number, random: SeededRandom, degree = 6, options: Partial<GossipMeshOptions> = {}) {
    assert.ok(Number.isInteger(nodeCount) && nodeCount > 0, `nodeCount must be a positive integer, got ${nodeCount}`)
    assert.ok(Number.isInteger(degree) && degree >= 1, `degree must be a positive integer, got ${degree}`)
    this.nodeCount = nodeCount
    this.degree = degree
    this.heartbeatMs = options.heartbeatMs ?? defaultGossipMeshOptions.heartbeatMs
    assert.ok(this.heartbeatMs >= 0, 'heartbeatMs must be >= 0')
    this.random = random

    const adjacency = buildAdjacency(nodeCount, degree, random)
    this.offsets = new Int32Array(nodeCount + 1)
    for (let node = 0; node < nodeCount; node++) {
      this.offsets[node + 1] = this.offsets[node]! + adjacency[node]!.size
    }
    this.neighbourList = new Int32Array(this.offsets[nodeCount]!)
    for (let node = 0; node < nodeCount; node++) {
      const sorted = Array.from(adjacency[node]!).sort((left, right) => left - right)
      this.neighbourList.set(sorted, this.offsets[node]!)
    }

    this.settled = new Uint8Array(nodeCount)
    this.heapNodes = new Int32Array(this.neighbourList.length + 1)
    this.heapTimes = new Float64Array(this.neighbourList.length + 1)
  }

  /** A view into the compact adjacency; do not mutate. */
  neighbours(node: number): Int32Array {
    this.assertNode(node)
    return this.neighbourList.subarray(this.offsets[node]!, this.offsets[node + 1]!)
  }

  /**
   * Earliest arrival time at every node of a message published by `from` at time 0, written
   * into `out` (Infinity when unreachable). A hop u -> v needs both ends up and the link up;
   * it costs a latency sample stretched by the slower end, plus a heartbeat if it was lost.
   */
  propagate(from: number, network: SimNetwork, isUp: (node: number) => boolean, out: Float64Array): void {
    this.assertNode(from)
    assert.ok(out.length >= this.nodeCount, 'out is shorter than nodeCount')
    assert.ok(network.nodeCount === this.nodeCount, 'network and mesh disagree on nodeCount')
    const { offsets, neighbourList, settled, heapNodes, heapTimes, random, heartbeatMs } = this
    const lossRate = network.lossRate
    out.fill(Infinity, 0, this.nodeCount)
    settled.fill(0)
    out[from] = 0
    if (!isUp(from)) return

    let heapSize = 0
    heapNodes[0] = from
    heapTimes[0] = 0
    heapSize = 1
    while (heapSize > 0) {
      const node: number = heapNodes[0]!
      const time = heapTimes[0]!
      // Pop: move the last entry to the root and sift it down.
      heapSize--
      if (heapSize > 0) {
        const movedNode = heapNodes[heapSize]!
        const movedTime = heapTimes[heapSize]!
        let index = 0
        for (;;) {
          const left = 2 * index + 1
          if (left >= heapSize) break
          const right = left + 1
          const child = right < heapSize && heapTimes[right]! < heapTimes[left]! ? right : left
          if (movedTime <= heapTimes[child]!) break
          heapNodes[index] = heapNodes[child]!
          heapTimes[index] = heapTimes[child]!
          index = child
        }
        heapNodes[index] = movedNode
        heapTimes[index] = movedTime
      }
      if (settled[node] === 1) continue // a stale entry superseded by a shorter path
      settled[node] = 1

      const end: number = offsets[node + 1]!
      for (let edge: number = offsets[node]!; edge < end; edge++) {
        const neighbour = neighbourList[edge]!
        if (settled[neighbour] === 1) continue
        if (!network.isLinkUp(node, neighbour) || !isUp(neighbour)) continue
        let hopMs = network.sampleLatencyMs(node, neighbour)
        if (random.chance(lossRate)) hopMs += heartbeatMs
        const arrival = time + hopMs * network.linkSlowFactor(node, neighbour)
        if (arrival >= out[neighbour]!) continue
        out[neighbour] = arrival
        // Push: sift up from the end.
        assert.ok(heapSize < heapNodes.length, 'propagate heap overflow')
        let index = heapSize++
        while (index > 0) {
          const parent = (index - 1) >> 1
          if (heapTimes[parent]! <= arrival) break
          heapNodes[index] = heapNodes[parent]!
          heapTimes[index] = heapTimes[parent]!
          index = parent
        }
        heapNodes[index] = neighbour
        heapTimes[index] = arrival
      }
    }
  }

  private assertNode(node: number): void {
    if (!(Number.isInteger(node) && node >= 0 && node < this.nodeCount)) assert.fail(`node ${node} out of range`)
  }
}

/**
 * Union of ceil(degree / 2) random rings (the first alone keeps the graph connected), then
 * each node still short of min(degree, N - 1) neighbours (rings can overlap) gets random extra links.
 */
function buildAdjacency(nodeCount: number, degree: number, random: SeededRandom): Set<number>[] {
  const adjacency: Set<number>[] = Array.from({ length: nodeCount }, () => new Set<number>())
  const link = (left: number, right: number): void => {
    if (left === right) return
    adjacency[left]!.add(right)
    adjacency[right]!.add(left)
  }
  const order = Array.from({ length: nodeCount }, (_, index) => index)
  const ringCount = Math.ceil(degree / 2)
  for (let ring = 0; ring < ringCount && nodeCount > 1; ring++) {
    random.shuffle(order)
    for (let index = 0; index < nodeCount; index++) link(order[index]!, order[(index + 1) % nodeCount]!)
  }

  const target = Math.min(degree, nodeCount - 1)
  // Named bound on random tries per missing link before a deterministic scan takes over.
  const maxRandomTries = 32
  for (let node = 0; node < nodeCount; node++) {
    const neighbours = adjacency[node]!
    while (neighbours.size < target) {
      let added = false
      for (let attempt = 0; attempt < maxRandomTries && !added; attempt++) {
        const candidate = random.int(0, nodeCount)
        if (candidate !== node && !neighbours.has(candidate)) {
          link(node, candidate)
          added = true
        }
      }
      if (added) continue
      const start = random.int(0, nodeCount)
      for (let step = 0; step < nodeCount && !added; step++) {
        const candidate = (start + step) % nodeCount
        if (candidate !== node && !neighbours.has(candidate)) {
          link(node, candidate)
          added = true
        }
      }
      assert.ok(added, 'mesh repair found no candidate although the node is short of neighbours')
    }
  }
  return adjacency
}

/**
 * The time by which `fraction` of the nodes have the message (Infinity if never), by
 * quickselect on a scratch copy so `arrivals` is left untouched.
 */
export function coverageTimeMs(arrivals: Float64Array, fraction: number, scratch?: Float64Array): number {
  assert.ok(fraction >= 0 && fraction <= 1, `fraction must be in [0, 1], got ${fraction}`)
  const count = arrivals.length
  const needed = Math.ceil(fraction * count)
  if (needed === 0) return 0
  const values = scratch !== undefined && scratch.length >= count ? scratch.subarray(0, count) : new Float64Array(count)
  values.set(arrivals)
  return selectKth(values, needed - 1)
}

/** Hoare-style quickselect with a median-of-three pivot: the k-th smallest (0-based). */
function selectKth(values: Float64Array, k: number): number {
  let low = 0
  let high = values.length - 1
  while (high > low) {
    const middle = (low + high) >> 1
    const a = values[low]!
    const b = values[middle]!
    const c = values[high]!
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b
    let left = low
    let right = high
    while (left <= right) {
      while (values[left]! < pivot) left++
      while (values[right]! > pivot) right--
      if (left <= right) {
        const held = values[left]!
        values[left] = values[right]!
        values[right] = held
        left++
        right--
      }
    }
    if (k <= right) high = right
    else if (k >= left) low = left
    else return values[k]!
  }
  return values[k]!
}
