// The simulated link model between N nodes (dense indices 0..N-1): per-link base latency,
// jitter, loss, duplication, reordering, partitions, one-way cuts and slow nodes. It only
// answers "when would this message arrive"; the simulator turns the answers into events.
import assert from 'node:assert/strict'
import { mix32, type SeededRandom } from './random.ts'

export interface NetworkOptions {
  /** Each directed link's base latency is uniform in [linkLatencyMinMs, linkLatencyMaxMs]. */
  linkLatencyMinMs: number
  linkLatencyMaxMs: number
  /** Mean of the exponential extra delay added to every message. */
  jitterMs: number
  lossRate: number
  duplicateRate: number
  /** Probability that a message is held back by an extra uniform [0, reorderDelayMaxMs]. */
  reorderRate: number
  reorderDelayMaxMs: number
}

export const defaultNetworkOptions: NetworkOptions = {
  linkLatencyMinMs: 20,
  linkLatencyMaxMs: 50,
  jitterMs: 2,
  lossRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  reorderDelayMaxMs: 30,
}

/** Group id of nodes not named in any group of a partition (and of everyone when healed). */
const unlistedGroup = 0

function assertProbability(name: string, probability: number): void {
  assert.ok(probability >= 0 && probability <= 1, `${name} must be in [0, 1], got ${probability}`)
}

export class SimNetwork {
  readonly nodeCount: number
  readonly options: Readonly<NetworkOptions>
  private readonly random: SeededRandom
  /** Base latencies are a hash of (linkSeed, from, to): no N^2 table, and no dependence on call order. */
  private readonly linkSeed: number
  private currentLossRate: number
  private currentDuplicateRate: number
  private currentReorderRate: number
  private readonly groupOf: Int32Array
  private readonly oneWayCuts = new Set<number>()
  private readonly slowFactors: Float64Array

  constructor(nodeCount: number, random: SeededRandom, options: Partial<NetworkOptions> = {}) {
    assert.ok(Number.isInteger(nodeCount) && nodeCount > 0, `nodeCount must be a positive integer, got ${nodeCount}`)
    // from * nodeCount + to must stay an exact integer key.
    assert.ok(nodeCount <= 50_000_000, 'nodeCount too large for link keys')
    const merged: NetworkOptions = { ...defaultNetworkOptions, ...options }
    assert.ok(
      merged.linkLatencyMinMs >= 0 && merged.linkLatencyMaxMs >= merged.linkLatencyMinMs,
      'link latency range must satisfy 0 <= min <= max',
    )
    assert.ok(merged.jitterMs >= 0 && merged.reorderDelayMaxMs >= 0, 'jitterMs and reorderDelayMaxMs must be >= 0')
    assertProbability('lossRate', merged.lossRate)
    assertProbability('duplicateRate', merged.duplicateRate)
    assertProbability('reorderRate', merged.reorderRate)
    this.nodeCount = nodeCount
    this.options = merged
    this.random = random
    this.linkSeed = random.fork('sim-network-link-latency').uint32()
    this.currentLossRate = merged.lossRate
    this.currentDuplicateRate = merged.duplicateRate
    this.currentReorderRate = merged.reorderRate
    this.groupOf = new Int32Array(nodeCount).fill(unlistedGroup)
    this.slowFactors = new Float64Array(nodeCount).fill(1)
  }

  get lossRate(): number {
    return this.currentLossRate
  }

  get duplicateRate(): number {
    return this.currentDuplicateRate
  }

  get reorderRate(): number {
    return this.currentReorderRate
  }

  setLossRate(probability: number): void {
    assertProbability('lossRate', probability)
    this.currentLossRate = probability
  }

  setDuplicateRate(probability: number): void {
    assertProbability('duplicateRate', probability)
    this.currentDuplicateRate = probability
  }

  setReorderRate(probability: number): void {
    assertProbability('reorderRate', probability)
    this.currentReorderRate = probability
  }

  /**
   * Delivery delays for one message sent now: [] when dropped, one delay normally, two when
   * duplicated. Each copy gets its own jitter and reorder draw; slow endpoints stretch both.
   */
  transmit(from: number, to: number): number[] {
    if (!this.isLinkUp(from, to)) return []
    if (this.random.chance(this.currentLossRate)) return []
    const first = this.deliveryDelayMs(from, to)
    if (!this.random.chance(this.currentDuplicateRate)) return [first]
    return [first, this.deliveryDelayMs(from, to)]
  }

  /** Base latency plus jitter, without loss, reordering or the slow factor (see `linkSlowFactor`). */
  sampleLatencyMs(from: number, to: number): number {
    return this.baseLatencyMs(from, to) + this.random.exponential(this.options.jitterMs)
  }

  /** The fixed latency of the directed link from -> to, a pure function of the seed and the pair. */
  baseLatencyMs(from: number, to: number): number {
    this.assertNode(from)
    this.assertNode(to)
    const hash = mix32((mix32((this.linkSeed + from) | 0) + Math.imul(to, 0x9e3779b1)) | 0)
    const unit = hash / 4294967296
    const { linkLatencyMinMs, linkLatencyMaxMs } = this.options
    return linkLatencyMinMs + unit * (linkLatencyMaxMs - linkLatencyMinMs)
  }

  /**
   * Cut every link between nodes in different groups, both ways. Nodes in no group form one
   * more group together. Replaces any earlier partition; one-way cuts are kept.
   */
  partition(groups: number[][]): void {
    this.groupOf.fill(unlistedGroup)
    groups.forEach((group, groupIndex) => {
      for (const node of group) {
        this.assertNode(node)
        assert.ok(this.groupOf[node] === unlistedGroup, `node ${node} is in more than one partition group`)
        this.groupOf[node] = groupIndex + 1
      }
    })
  }

  /** Drop messages from -> to while to -> from still works. */
  cutOneWay(from: number, to: number): void {
    this.assertNode(from)
    this.assertNode(to)
    this.oneWayCuts.add(from * this.nodeCount + to)
  }

  /** Remove all partitions and one-way cuts. */
  heal(): void {
    this.groupOf.fill(unlistedGroup)
    this.oneWayCuts.clear()
  }

  isLinkUp(from: number, to: number): boolean {
    this.assertNode(from)
    this.assertNode(to)
    if (this.groupOf[from] !== this.groupOf[to]) return false
    return this.oneWayCuts.size === 0 || !this.oneWayCuts.has(from * this.nodeCount + to)
  }

  /** 1 is normal speed; 3 means everything this node sends or receives takes three times as long. */
  setSlowFactor(node: number, factor: number): void {
    this.assertNode(node)
    assert.ok(Number.isFinite(factor) && factor > 0, `slow factor must be finite and > 0, got ${factor}`)
    this.slowFactors[node] = factor
  }

  slowFactor(node: number): number {
    this.assertNode(node)
    return this.slowFactors[node]!
  }

  /** The stretch applied to a message on from -> to: the slower endpoint dominates. */
  linkSlowFactor(from: number, to: number): number {
    return Math.max(this.slowFactor(from), this.slowFactor(to))
  }

  private deliveryDelayMs(from: number, to: number): number {
    let delayMs = this.sampleLatencyMs(from, to)
    if (this.random.chance(this.currentReorderRate)) delayMs += this.random.next() * this.options.reorderDelayMaxMs
    return delayMs * this.linkSlowFactor(from, to)
  }

  private assertNode(node: number): void {
    if (!(Number.isInteger(node) && node >= 0 && node < this.nodeCount)) assert.fail(`node ${node} out of range`)
  }
}
