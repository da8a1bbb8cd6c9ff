// Free capacity of the round's bidders, debited as replicas are awarded so no node is ever
// over-committed within a batch. Flat typed arrays indexed by bidder, for speed.
import type { Demand } from './job-spec.ts'
import type { Resources } from './node-offer.ts'

export class CapacityLedger {
  readonly cpuMillis: Float64Array
  readonly memoryMiB: Float64Array
  readonly diskMiB: Float64Array
  readonly gpuCount: Float64Array

  constructor(free: readonly Resources[]) {
    const size = free.length
    this.cpuMillis = new Float64Array(size)
    this.memoryMiB = new Float64Array(size)
    this.diskMiB = new Float64Array(size)
    this.gpuCount = new Float64Array(size)
    for (let index = 0; index < size; index++) {
      const resources = free[index]!
      this.cpuMillis[index] = resources.cpuMillis
      this.memoryMiB[index] = resources.memoryMiB
      this.diskMiB[index] = resources.diskMiB
      this.gpuCount[index] = resources.gpuCount
    }
  }

  fits(node: number, demand: Demand): boolean {
    return (
      demand.cpuMillis <= this.cpuMillis[node]! &&
      demand.memoryMiB <= this.memoryMiB[node]! &&
      demand.diskMiB <= this.diskMiB[node]! &&
      demand.gpuCount <= this.gpuCount[node]!
    )
  }

  /** How many replicas of `demand` still fit on `node`. */
  slots(node: number, demand: Demand): number {
    let slots = Infinity
    if (demand.cpuMillis > 0) slots = Math.min(slots, Math.floor(this.cpuMillis[node]! / demand.cpuMillis))
    if (demand.memoryMiB > 0) slots = Math.min(slots, Math.floor(this.memoryMiB[node]! / demand.memoryMiB))
    if (demand.diskMiB > 0) slots = Math.min(slots, Math.floor(this.diskMiB[node]! / demand.diskMiB))
    if (demand.gpuCount > 0) slots = Math.min(slots, Math.floor(this.gpuCount[node]! / demand.gpuCount))
    return Math.max(0, slots)
  }

  /** Debits `replicas` replicas; asserts the node had room (an over-commit is a bug). */
  take(node: number, demand: Demand, replicas = 1): void {
    const cpu = (this.cpuMillis[node] = this.cpuMillis[node]! - demand.cpuMillis * replicas)
    const memory = (this.memoryMiB[node] = this.memoryMiB[node]! - demand.memoryMiB * replicas)
    const disk = (this.diskMiB[node] = this.diskMiB[node]! - demand.diskMiB * replicas)
    const gpus = (this.gpuCount[node] = this.gpuCount[node]! - demand.gpuCount * replicas)
    if (cpu < 0 || memory < 0 || disk < 0 || gpus < 0) throw new Error(`assertion: node index ${node} over-committed`)
  }

  freeOf(node: number): Resources {
    return { cpuMillis: this.cpuMillis[node]!, memoryMiB: this.memoryMiB[node]!, diskMiB: this.diskMiB[node]!, gpuCount: this.gpuCount[node]! }
  }
}
