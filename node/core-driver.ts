// What drives the consensus core in the daemon: inputs (messages, gossip, ticks, clients' requests)
// wait in a bounded inbox and go to the core in batches (Peer.stepAll), one batch at a time, each
// batch's effects performed in order (effect-performer.ts) before the next is stepped; the timer is
// armed at the core's next wake. What an effect means is not this file's business.
import type { Peer, PeerEffect, PeerInput } from '../consensus/index.ts'
import type { Clock } from './clock.ts'
import type { Logger } from './logger.ts'

/** Inputs waiting for the core; past this, new inputs are dropped (the core cannot keep up). */
export const maxInboxLength = 10_000
/** Inputs handed to the core in one step (what queued during the previous step's persist). */
export const maxStepBatch = 256
/** The timer is re-armed at least this often even when the core wants no tick sooner. */
const maxTimerDelayMs = 60_000

/** An input made when its batch is stepped, with that step's time. */
export type PendingInput = (nowMs: number) => PeerInput

export interface CoreDriverInit {
  clock: Clock
  logger: Logger
  /** The core, once built (the daemon runs only after). */
  peer(): Peer | null
  /** Inputs are taken, and batches stepped, only while the daemon runs. */
  running(): boolean
  /** Performs one batch's effects in order; the next batch waits for it. */
  perform(effects: readonly PeerEffect[]): Promise<void>
  /** After each batch's effects are performed. */
  onStepped(): void
  /** A batch's effects failed (a persist): the daemon cannot go on. */
  onFatal(error: Error): void
}

export class CoreDriver {
  readonly #init: CoreDriverInit
  readonly #inbox: PendingInput[] = []
  #inboxDropped = 0
  #draining: Promise<void> | null = null
  #drainRunning = false
  #timer: NodeJS.Timeout | null = null
  #timerAtMs = Infinity
  #tickQueued = false

  constructor(init: CoreDriverInit) {
    this.#init = init
  }

  get inboxLength(): number {
    return this.#inbox.length
  }

  get inboxDropped(): number {
    return this.#inboxDropped
  }

  /** Queues an input for the core; false when the daemon does not run or the inbox is full. */
  enqueue(make: PendingInput): boolean {
    if (!this.#init.running()) return false
    if (this.#inbox.length >= maxInboxLength) {
      this.#inboxDropped++
      if (this.#inboxDropped % 1_000 === 1) this.#init.logger.warn('inbox-full', { maxInboxLength, dropped: this.#inboxDropped })
      return false
    }
    this.#inbox.push(make)
    if (!this.#drainRunning) {
      this.#drainRunning = true
      this.#draining = this.#drain()
    }
    return true
  }

  enqueueTick(): void {
    if (this.#tickQueued) return
    this.#tickQueued = true
    const queued = this.enqueue((nowMs) => {
      this.#tickQueued = false
      return { kind: 'tick', nowMs }
    })
    // A full inbox refused the tick: the drain that empties it re-arms the timer.
    if (!queued) this.#tickQueued = false
  }

  /** The daemon stops: no more ticks, and what waits in the inbox is dropped. */
  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#inbox.length = 0
  }

  /** Resolves once the batch in flight, if any, has performed its effects (or failed). */
  async settled(): Promise<void> {
    await this.#draining?.catch(() => {})
  }

  async #drain(): Promise<void> {
    try {
      while (this.#inbox.length > 0 && this.#init.running()) {
        const peer = this.#init.peer()!
        // What queued while the last batch persisted and sent goes to the core as one batch: one
        // write and one sync message per partner for all of it (bounded, so a flood still yields).
        const nowMs = this.#init.clock.nowMs()
        const batch = this.#inbox.splice(0, maxStepBatch).map((make) => make(nowMs))
        const effects = peer.stepAll(batch)
        await this.#init.perform(effects)
        this.#init.onStepped()
      }
    } catch (error) {
      this.#init.onFatal(error as Error)
      return
    } finally {
      // Cleared in the same synchronous run as the last inbox check: no input can slip between.
      this.#drainRunning = false
    }
    this.#armTimer()
  }

  #armTimer(): void {
    const peer = this.#init.peer()
    if (!this.#init.running() || peer === null) return
    const clock = this.#init.clock
    const wakeMs = Math.min(peer.nextWakeMs(), clock.nowMs() + maxTimerDelayMs)
    if (this.#timer !== null && this.#timerAtMs <= wakeMs) return
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timerAtMs = wakeMs
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#timerAtMs = Infinity
      this.enqueueTick()
    }, Math.max(0, wakeMs - clock.nowMs()))
  }
}
