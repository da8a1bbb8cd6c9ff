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
  /** The voters of the committee in force now (committee changes move them from the genesis voters). */
  committeeIndexes(): readonly number[]
  isUp(node: number): boolean
  /** `loseWritesMs`: at its restart, the document writes of this many ms before the crash are gone (a disk that had not synced them). */
  crash(node: number, reason: string, loseWritesMs?: number): void
  restart(node: number): void
  /** The node's process stops for `durationMs` (SIGSTOP, a frozen VM), its jobs running on. */
  pause(node: number, durationMs: number): void
  /** A paused node's process runs again now (no-op if it is not paused). */
  resume(node: number): void
  /** The nodes that are voters now, in any committee their peers know. */
  voterSet(): ReadonlySet<number>
  partition(groups: number[][], reason: string): void
  cutOneWay(from: number, to: number): void
  heal(reason: string): void
  setLossRate(rate: number): void
  setReorderRate(rate: number): void
  setDuplicateRate(rate: number): void
  setSlowFactor(node: number, factor: number): void
  /** Until `untilMs`, document sync to `node` takes `extraMs` more (a congested link: small election messages still pass). */
  slowSyncTo(node: number, extraMs: number, untilMs: number): void
  /** Run `action` at virtual time `atMs`. */
  schedule(atMs: number, action: () => void): void
}

export const faultGapMs = { min: 1_500, max: 5_000 }
/** Most nodes down at once (a majority of a small committee among them): all restart in the liveness phase. */
const maxCrashedAtOnce = 4
/** A pause: long enough, often, for the node's lease to lapse and its jobs to be placed elsewhere. */
const pauseMs = { min: 500, max: 6_000 }
/** A stale disk loses this much of the document writes before the crash. */
const lostWritesMs = { min: 500, max: 10_000 }
/** How long a voter hears nothing before the leader fails (a 'lag'). */
const lagMs = { min: 1_000, max: 4_000 }
/** After a lag, how much longer the behind voters' catch-up takes (its backlog on a congested link), for how long. */
const catchUpExtraMs = { min: 1_000, max: 3_000 }
const catchUpSlowForMs = 5_000
/**
 * How often each fault is drawn, relative to the others: the faults that put a node behind the rest
 * (a stale disk, a voter that fell behind when its leader fails) are the ones that test what a new
 * leader or a restarted node must catch up on before it acts.
 */
const faultWeights: Partial<Record<FaultKind, number>> = { disk: 2, lag: 5 }

export class FaultInjector {
  readonly #random: SeededRandom
  readonly #faults: readonly FaultKind[]
  readonly #target: FaultTarget
  readonly #crashed = new Set<number>()
  readonly #slow = new Set<number>()
  readonly #paused = new Set<number>()
  #healed = false

  constructor(random: SeededRandom, faults: readonly FaultKind[], target: FaultTarget) {
    this.#random = random
    // Drift is drawn once, at boot; the Byzantine non-voter attacks on its own schedule (byzantine.ts).
    this.#faults = faults.filter((fault) => fault !== 'drift' && fault !== 'byzantine')
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

  #pickFault(): FaultKind {
    let total = 0
    for (const fault of this.#faults) total += faultWeights[fault] ?? 1
    let draw = this.#random.next() * total
    for (const fault of this.#faults) {
      draw -= faultWeights[fault] ?? 1
      if (draw < 0) return fault
    }
    return this.#faults.at(-1)!
  }

  #endsAt(minMs: number, maxMs: number): number { return this.#target.nowMs + this.#random.int(minMs, maxMs) }

  /** A fault's later step (its end, or its second act): dropped once the heal has ended every fault, so none reaches the liveness phase. */
  #later(atMs: number, action: () => void): void {
    this.#target.schedule(atMs, () => {
      if (!this.#healed) action()
    })
  }

  /** Crashes `node` and restarts it after `downMinMs` to `downMaxMs` (`loseWritesMs`: its disk's unsynced writes lost). */
  #crashFor(node: number, reason: string, downMinMs: number, downMaxMs: number, loseWritesMs = 0): void {
    this.#crashed.add(node)
    this.#target.crash(node, reason, loseWritesMs)
    this.#later(this.#endsAt(downMinMs, downMaxMs), () => {
      this.#crashed.delete(node)
      this.#target.restart(node)
    })
  }

  injectOne(): void {
    if (this.#healed || this.#faults.length === 0) return
    const target = this.#target
    const fault = this.#pickFault()
    switch (fault) {
      case 'partition': {
        const victim = this.#victim()
        const side: number[] = [victim]
        const extra = this.#random.int(0, Math.max(1, Math.floor(target.nodeCount / 2)))
        for (let index = 0; index < extra; index++) side.push(this.#random.int(0, target.nodeCount))
        const minority = [...new Set(side)]
        const rest = Array.from({ length: target.nodeCount }, (_, node) => node).filter((node) => !minority.includes(node))
        target.partition([minority, rest], `partition ${minority.length} | ${rest.length}`)
        this.#later(this.#endsAt(1_000, 6_000), () => target.heal('partition ends'))
        return
      }
      case 'oneway': {
        // The victim's messages to voters are lost, or theirs to it (it hears nothing: it falls behind).
        const victim = this.#victim()
        const outbound = this.#random.chance(0.5)
        for (const voter of target.voterIndexes()) if (voter !== victim && this.#random.chance(0.6)) target.cutOneWay(outbound ? victim : voter, outbound ? voter : victim)
        this.#later(this.#endsAt(1_000, 5_000), () => target.heal('one-way cut ends'))
        return
      }
      case 'crash': {
        if (this.#crashed.size >= maxCrashedAtOnce) return
        const node = this.#victim()
        if (!target.isUp(node)) return
        this.#crashFor(node, 'crash', 300, 5_000)
        return
      }
      case 'disk': {
        // A crash whose disk had not synced its last writes (a VM restored from a snapshot does the
        // same). Only non-voters: a voter's disk is assumed durable (fsync), as Raft assumes; its
        // acknowledgements count toward commits.
        if (this.#crashed.size >= maxCrashedAtOnce) return
        const voters = target.voterSet()
        const candidates = Array.from({ length: target.nodeCount }, (_, node) => node).filter((node) => target.isUp(node) && !voters.has(node))
        if (candidates.length === 0) return
        const node = this.#random.pick(candidates)
        this.#crashFor(node, 'crash', 300, 3_000, this.#random.int(lostWritesMs.min, lostWritesMs.max))
        return
      }
      case 'lag': {
        // As many voters as the leader can commit without hear nothing for a while (they fall behind),
        // then the leader's zone fails just as they hear again, taking one up-to-date voter with it:
        // most voters left are behind, and their catch-up crawls for a while (a backlog on a
        // congested link) while votes pass. A behind voter may win the election before it holds what
        // was committed, as a new leader's barrier must allow for.
        const leader = target.leaderIndex()
        const voters = target.committeeIndexes()
        const others = voters.filter((voter) => voter !== leader && target.isUp(voter))
        if (leader === null || others.length === 0 || this.#crashed.size >= maxCrashedAtOnce) return
        const behind: number[] = []
        for (let count = Math.max(1, voters.length - (Math.floor(voters.length / 2) + 1)); count > 0 && others.length > 0; count--) {
          behind.push(others.splice(this.#random.int(0, others.length), 1)[0]!)
        }
        for (const voter of behind) for (let node = 0; node < target.nodeCount; node++) if (node !== voter) target.cutOneWay(node, voter)
        this.#later(this.#endsAt(lagMs.min, lagMs.max), () => {
          target.heal(`${behind.join(', ')} hear again`)
          for (const voter of behind) target.slowSyncTo(voter, this.#random.int(catchUpExtraMs.min, catchUpExtraMs.max), target.nowMs + catchUpSlowForMs)
          if (!target.isUp(leader)) return
          this.#crashFor(leader, 'crash (the leader fails as a voter that fell behind hears again)', 300, 3_000)
          const zoneMate = others.filter((voter) => target.isUp(voter))
          if (zoneMate.length > 0 && this.#crashed.size < maxCrashedAtOnce) this.#crashFor(this.#random.pick(zoneMate), 'crash (in the failed leader\'s zone)', 300, 3_000)
        })
        return
      }
      case 'pause': {
        const node = this.#victim()
        if (!target.isUp(node)) return
        const durationMs = this.#random.int(pauseMs.min, pauseMs.max)
        this.#paused.add(node)
        target.pause(node, durationMs)
        this.#later(target.nowMs + durationMs, () => this.#paused.delete(node))
        return
      }
      case 'loss': {
        target.setLossRate(this.#random.int(2, 25) / 100)
        this.#later(this.#endsAt(1_000, 6_000), () => target.setLossRate(0))
        return
      }
      case 'reorder': {
        target.setReorderRate(this.#random.int(10, 50) / 100)
        this.#later(this.#endsAt(1_000, 6_000), () => target.setReorderRate(0))
        return
      }
      case 'duplicate': {
        target.setDuplicateRate(this.#random.int(5, 30) / 100)
        this.#later(this.#endsAt(1_000, 6_000), () => target.setDuplicateRate(0))
        return
      }
      case 'slow': {
        const node = this.#victim()
        this.#slow.add(node)
        target.setSlowFactor(node, this.#random.int(2, 8))
        this.#later(this.#endsAt(1_000, 8_000), () => {
          this.#slow.delete(node)
          target.setSlowFactor(node, 1)
        })
        return
      }
      case 'drift':
      case 'byzantine':
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
    for (const node of this.#paused) target.resume(node)
    this.#paused.clear()
  }
}
