// What a container used, for the exit report: the engine's stats stream (about one sample a second)
// is read while the container runs, keeping the latest CPU total and the highest memory seen
// (cgroup v1 reports the group's own peak, max_usage; v2 only the current usage). The engine drops
// a container's group when it ends, so the last sample is what remains: CPU is a lower bound, short
// of the time after that sample, and a container that ends before the first sample has no figures.
import type Docker from 'dockerode'
import type { Readable } from 'node:stream'

/** A stats line longer than this is not the engine's: the meter stops reading. */
const maxStatsLineBytes = 1 << 20

interface StatsSample {
  cpu_stats?: { cpu_usage?: { total_usage?: number } }
  memory_stats?: { usage?: number; max_usage?: number }
}

export class ContainerUsageMeter {
  #cpuNs: number | null = null
  #peakBytes: number | null = null
  #stream: Readable | null = null
  #stopped = false

  /** Starts reading the container's stats; failures only leave the figures empty. */
  static start(container: Docker.Container): ContainerUsageMeter {
    const meter = new ContainerUsageMeter()
    void meter.#read(container)
    return meter
  }

  /** Stops reading and returns what was measured. */
  finish(): { cpuSeconds: number | null; peakMemoryBytes: number | null } {
    this.#stopped = true
    this.#stream?.destroy()
    return { cpuSeconds: this.#cpuNs === null ? null : this.#cpuNs / 1e9, peakMemoryBytes: this.#peakBytes }
  }

  /** One sample: an ended container's group reads as zeros, which must not lower what was seen. */
  take(sample: StatsSample): void {
    const cpuNs = sample.cpu_stats?.cpu_usage?.total_usage
    if (typeof cpuNs === 'number' && cpuNs > 0 && (this.#cpuNs === null || cpuNs > this.#cpuNs)) this.#cpuNs = cpuNs
    for (const bytes of [sample.memory_stats?.max_usage, sample.memory_stats?.usage]) {
      if (typeof bytes === 'number' && bytes > 0 && (this.#peakBytes === null || bytes > this.#peakBytes)) this.#peakBytes = bytes
    }
  }

  async #read(container: Docker.Container): Promise<void> {
    try {
      const stream = (await container.stats({ stream: true })) as unknown as Readable
      if (this.#stopped) return void stream.destroy()
      this.#stream = stream
      let pending = ''
      for await (const chunk of stream) {
        pending += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8')
        if (pending.length > maxStatsLineBytes) return void stream.destroy()
        const lines = pending.split('\n')
        pending = lines.pop() ?? ''
        for (const line of lines) if (line.trim() !== '') this.take(JSON.parse(line) as StatsSample)
      }
    } catch {
      // The container ended (or the engine refused): what was read stands.
    }
  }
}
