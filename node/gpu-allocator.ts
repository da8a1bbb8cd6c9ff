// The runner's GPU devices: which of the node's device indices are free. The leader's placement
// counts GPUs per node (the document's accounting never puts more GPUs on a node than it offers);
// which devices a run gets is chosen here, on the runner, when it launches, and they come back when
// the run ends. Each index is handed to one run at a time. Runs do not outlive a daemon (a restart
// ends what the last one left before the core's first step: job-runner.ts), so a new daemon starts
// with every device free.

/** A run asked for more GPUs than are free here. */
export class GpuShortageError extends Error {
  override readonly name = 'GpuShortageError'
  readonly jobId: string
  readonly asked: number
  readonly free: readonly number[]
  constructor(facts: { jobId: string; asked: number; free: readonly number[]; total: number }) {
    super(`job ${facts.jobId} asks for ${facts.asked} GPU${facts.asked === 1 ? '' : 's'}, but ${facts.free.length === 0 ? 'no device is free' : `only ${facts.free.length} ${facts.free.length === 1 ? 'is' : 'are'} free (indices ${facts.free.join(',')})`} of the ${facts.total} this node offers`)
    this.jobId = facts.jobId
    this.asked = facts.asked
    this.free = facts.free
  }
}

export class GpuAllocator {
  readonly #devices: readonly number[]
  readonly #free: Set<number>
  readonly #releaseListeners = new Set<() => void>()

  /** `devices`: the indices this node offers jobs (nvidia-smi's). */
  constructor(devices: readonly number[]) {
    for (const index of devices) if (!Number.isInteger(index) || index < 0) throw new RangeError(`GPU device index ${index} is not a whole number >= 0`)
    if (new Set(devices).size !== devices.length) throw new RangeError(`GPU device indices ${devices.join(',')} name a device twice`)
    this.#devices = [...devices].sort((a, b) => a - b)
    this.#free = new Set(this.#devices)
  }

  get total(): number { return this.#devices.length }

  /** The free indices, lowest first. */
  free(): number[] {
    return this.#devices.filter((index) => this.#free.has(index))
  }

  /** Takes `count` free devices (lowest indices first) for `jobId`'s run; GpuShortageError when fewer are free. */
  acquire(jobId: string, count: number): number[] {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`job ${jobId}: a GPU count must be a whole number >= 0, got ${count}`)
    const free = this.free()
    if (free.length < count) throw new GpuShortageError({ jobId, asked: count, free, total: this.#devices.length })
    const taken = free.slice(0, count)
    for (const index of taken) this.#free.delete(index)
    return taken
  }

  /** Gives devices back when their run ended. A device not handed out (or given back twice) is a bug: it throws. */
  release(devices: readonly number[]): void {
    if (new Set(devices).size !== devices.length) throw new RangeError(`GPUs ${devices.join(',')} given back name a device twice`)
    for (const index of devices) {
      if (!this.#devices.includes(index)) throw new RangeError(`GPU ${index} is not one of this node's devices (${this.#devices.join(',')})`)
      if (this.#free.has(index)) throw new RangeError(`GPU ${index} was given back while free`)
    }
    for (const index of devices) this.#free.add(index)
    if (devices.length === 0) return
    for (const listener of [...this.#releaseListeners]) listener()
  }

  /** Calls `listener` after every release that freed a device, until the returned function is called. */
  onRelease(listener: () => void): () => void {
    this.#releaseListeners.add(listener)
    return () => this.#releaseListeners.delete(listener)
  }
}
