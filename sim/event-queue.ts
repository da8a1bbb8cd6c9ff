// The simulator's agenda: a binary min-heap of pending events keyed by virtual time.
// Ties pop in insertion order (a sequence number is the secondary key), so a run is a
// pure function of its seed. Keys live in parallel typed arrays to stay cheap at millions.
import assert from 'node:assert/strict'

export interface EventQueueOptions {
  /** Most events that may be pending at once; exceeding it is a bug in the scenario. */
  maxEvents: number
}

export const defaultEventQueueOptions: EventQueueOptions = { maxEvents: 50_000_000 }

const initialCapacity = 1024

export class EventQueue<E> {
  readonly maxEvents: number
  private times = new Float64Array(initialCapacity)
  private sequences = new Float64Array(initialCapacity)
  private events: (E | undefined)[] = []
  private count = 0
  private nextSequence = 0

  constructor(options: Partial<EventQueueOptions> = {}) {
    this.maxEvents = options.maxEvents ?? defaultEventQueueOptions.maxEvents
    assert.ok(Number.isInteger(this.maxEvents) && this.maxEvents > 0, 'maxEvents must be a positive integer')
  }

  get size(): number {
    return this.count
  }

  push(atMs: number, event: E): void {
    assert.ok(!Number.isNaN(atMs), 'event time is NaN')
    if (this.count >= this.maxEvents) assert.fail(`event queue exceeded maxEvents (${this.maxEvents})`)
    if (this.count === this.times.length) this.grow()
    const sequence = this.nextSequence++
    // Sift up: move parents down until the slot for the new key is found.
    let index = this.count++
    while (index > 0) {
      const parent = (index - 1) >> 1
      const parentTime = this.times[parent]!
      if (parentTime < atMs || (parentTime === atMs && this.sequences[parent]! < sequence)) break
      this.place(index, parent)
      index = parent
    }
    this.times[index] = atMs
    this.sequences[index] = sequence
    this.events[index] = event
  }

  pop(): { atMs: number; event: E } | undefined {
    if (this.count === 0) return undefined
    const atMs = this.times[0]!
    const event = this.events[0] as E
    const last = --this.count
    if (last > 0) {
      const movedTime = this.times[last]!
      const movedSequence = this.sequences[last]!
      const movedEvent = this.events[last]
      // Sift down the former last element from the root.
      let index = 0
      for (;;) {
        const left = 2 * index + 1
        if (left >= last) break
        const right = left + 1
        let child = left
        if (right < last && this.less(right, left)) child = right
        const childTime = this.times[child]!
        if (movedTime < childTime || (movedTime === childTime && movedSequence < this.sequences[child]!)) break
        this.place(index, child)
        index = child
      }
      this.times[index] = movedTime
      this.sequences[index] = movedSequence
      this.events[index] = movedEvent
    }
    this.events[last] = undefined // release the reference for the garbage collector
    return { atMs, event }
  }

  peekTimeMs(): number | undefined {
    return this.count === 0 ? undefined : this.times[0]
  }

  private less(left: number, right: number): boolean {
    const leftTime = this.times[left]!
    const rightTime = this.times[right]!
    return leftTime < rightTime || (leftTime === rightTime && this.sequences[left]! < this.sequences[right]!)
  }

  private place(target: number, source: number): void {
    this.times[target] = this.times[source]!
    this.sequences[target] = this.sequences[source]!
    this.events[target] = this.events[source]
  }

  private grow(): void {
    const capacity = Math.min(this.times.length * 2, Math.max(this.maxEvents, initialCapacity))
    const times = new Float64Array(capacity)
    times.set(this.times)
    const sequences = new Float64Array(capacity)
    sequences.set(this.sequences)
    this.times = times
    this.sequences = sequences
  }
}
