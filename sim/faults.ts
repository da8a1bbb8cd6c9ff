// The fault injector of the safety phase: every few virtual seconds it picks one enabled fault
// (often aimed at the current leader) and schedules its end. At the heal time every fault ends.
import type { FaultKind } from './options.ts'
import type { SeededRandom } from './random.ts'

/** What the injector may do to the simulated world. */
export interface FaultTarget {
  readonly nodeCount: number
  readonly nowMs: number
  leaderIndex(): number | null
  voterIndexes(): readonly number[]
  isUp(node: number): boolean
  crash(node: number, reason: string): void
  restart(node: number): void
  partition(groups: number[][], reason: string): void
  cutOneWay(from: number, to: number): void
  heal(reason: string): void
  setLossRate(rate: number): void
  setReorderRate(rate: number): void
  setDuplicateRate(rate: number): void
  setSlowFactor(node: number, factor: number): void
  /** Run `action` at virtual time `atMs` (unless the heal came first and cleared it). */
  schedule(atMs: number, action: () => void): void
}

export const faultGapMs = { min: 1_500, max: 5_000 }
/** Most nodes down at once, so a majority of voters can come back and liveness stays testable. */
const maxCrashedAtOnce = 2

export class FaultInjector {
  readonly #random: SeededRandom
  readonly #faults: readonly FaultKind[]
  readonly #target: FaultTarget
  readonly #crashed = new Set<number>()
  readonly #slow = new Set<number>()
  #healed = false

  constructor(random: SeededRandom, faults: readonly FaultKind[], target: FaultTarget) {
    this.#random = random
    this.#faults = faults.filter((fault) => fault !== 'drift') // drift is drawn once, at boot
    this.#target = target
  }

  get active(): boolean { return this.#faults.length > 0 }

  nextGapMs(): number { return this.#random.int(faultGapMs.min, faultGapMs.max) }

  /** The node a fault aims at: the leader half of the time, else anyone. */
  #victim(): number {
    const leader = this.#target.leaderIndex()
    if (leader !== null && this.#random.chance(0.5)) return leader
    return this.#random.int(0, this.#target.nodeCount)
  }

  #endsAt(minMs: number, maxMs: number): number { return this.#target.nowMs + this.#random.int(minMs, maxMs) }

  injectOne(): void {
    if (this.#healed || this.#faults.length === 0) return
    const target = this.#target
    const fault = this.#random.pick(this.#faults)
    switch (fault) {
      case 'partition': {
        const victim = this.#victim()
        const side: number[] = [victim]
        const extra = this.#random.int(0, Math.max(1, Math.floor(target.nodeCount / 2)))
        for (let index = 0; index < extra; index++) side.push(this.#random.int(0, target.nodeCount))
        const minority = [...new Set(side)]
        const rest = Array.from({ length: target.nodeCount }, (_, node) => node).filter((node) => !minority.includes(node))
        target.partition([minority, rest], `partition ${minority.length} | ${rest.length}`)
        target.schedule(this.#endsAt(1_000, 6_000), () => target.heal('partition ends'))
        return
      }
      case 'oneway': {
        const from = this.#victim()
        for (const voter of target.voterIndexes()) if (voter !== from && this.#random.chance(0.6)) target.cutOneWay(from, voter)
        target.schedule(this.#endsAt(1_000, 5_000), () => target.heal('one-way cut ends'))
        return
      }
      case 'crash': {
        if (this.#crashed.size >= maxCrashedAtOnce) return
        const node = this.#victim()
        if (!target.isUp(node)) return
        this.#crashed.add(node)
        target.crash(node, 'crash')
        target.schedule(this.#endsAt(300, 5_000), () => {
          this.#crashed.delete(node)
          target.restart(node)
        })
        return
      }
      case 'loss': {
        target.setLossRate(this.#random.int(2, 25) / 100)
        target.schedule(this.#endsAt(1_000, 6_000), () => target.setLossRate(0))
        return
      }
      case 'reorder': {
        target.setReorderRate(this.#random.int(10, 50) / 100)
        target.schedule(this.#endsAt(1_000, 6_000), () => target.setReorderRate(0))
        return
      }
      case 'duplicate': {
        target.setDuplicateRate(this.#random.int(5, 30) / 100)
        target.schedule(this.#endsAt(1_000, 6_000), () => target.setDuplicateRate(0))
        return
      }
      case 'slow': {
        const node = this.#victim()
        this.#slow.add(node)
        target.setSlowFactor(node, this.#random.int(2, 8))
        target.schedule(this.#endsAt(1_000, 8_000), () => {
          this.#slow.delete(node)
          target.setSlowFactor(node, 1)
        })
        return
      }
      case 'drift':
        return
    }
  }

  /** End of the safety phase: every fault ends and every crashed node restarts. */
  healAll(): void {
    this.#healed = true
    const target = this.#target
    target.heal('liveness phase: all faults end')
    target.setLossRate(0)
    target.setReorderRate(0)
    target.setDuplicateRate(0)
    for (const node of this.#slow) target.setSlowFactor(node, 1)
    this.#slow.clear()
    for (const node of this.#crashed) target.restart(node)
    this.#crashed.clear()
  }
}
