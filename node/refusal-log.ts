// Refusals of what peers send are all counted where they happen, but logged through this: one line
// per key (a peer, a peer and topic) per interval, carrying how many were not logged since the last
// line, so that no peer can fill the log (1,000 malformed gossip messages once wrote 1,000 lines).
import type { Logger } from './logger.ts'

export interface RefusalLogLimits {
  /** At most one line per key per interval. */
  intervalMs: number
  /** Keys remembered (the least recently logged forgotten first). */
  maxKeys: number
}

export const defaultRefusalLogLimits: RefusalLogLimits = { intervalMs: 1_000, maxKeys: 1_024 }

export class RefusalLog {
  readonly #logger: Logger
  readonly #nowMs: () => number
  readonly #limits: RefusalLogLimits
  readonly #last = new Map<string, { atMs: number; suppressed: number }>()
  /** Lines not written, over all keys (a test or a status can read how much was held back). */
  suppressed = 0

  constructor(logger: Logger, nowMs: () => number = () => performance.now(), limits: Partial<RefusalLogLimits> = {}) {
    this.#logger = logger
    this.#nowMs = nowMs
    this.#limits = { ...defaultRefusalLogLimits, ...limits }
  }

  /** Logs `event` at `level` unless `key` was logged within the interval; `suppressedSinceLast` says how many were not. */
  log(key: string, level: 'info' | 'warn', event: string, fields: Record<string, unknown>): void {
    const nowMs = this.#nowMs()
    const last = this.#last.get(key)
    if (last !== undefined && nowMs - last.atMs < this.#limits.intervalMs) {
      last.suppressed++
      this.suppressed++
      return
    }
    this.#last.delete(key) // re-insert: the map's order is least recently logged first
    if (this.#last.size >= this.#limits.maxKeys) this.#last.delete(this.#last.keys().next().value!)
    this.#last.set(key, { atMs: nowMs, suppressed: 0 })
    this.#logger[level](event, { ...fields, suppressedSinceLast: last?.suppressed ?? 0 })
  }
}
