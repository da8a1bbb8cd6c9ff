// Runs seeds on worker threads (one per core by default). Results come back ordered by seed,
// so the report is the same whatever the number of workers.
import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import type { SimOptions } from './options.ts'
import { runSeed, type SeedResult } from './report.ts'

export async function runSeeds(options: SimOptions, seeds: readonly number[], workers = availableParallelism(), onResult?: (result: SeedResult) => void): Promise<SeedResult[]> {
  const count = Math.max(1, Math.min(workers, seeds.length))
  if (count === 1) {
    return seeds.map((seed) => {
      const result = runSeed(options, seed)
      onResult?.(result)
      return result
    })
  }
  const results = new Map<number, SeedResult>()
  let next = 0
  await Promise.all(
    Array.from({ length: count }, async () => {
      const worker = new Worker(new URL('./seed-worker.ts', import.meta.url), { workerData: { options } })
      try {
        while (next < seeds.length) {
          const seed = seeds[next++]!
          const result = await new Promise<SeedResult>((resolve, reject) => {
            const onMessage = (value: SeedResult): void => { cleanup(); resolve(value) }
            const onError = (error: Error): void => { cleanup(); reject(error) }
            const cleanup = (): void => { worker.off('message', onMessage); worker.off('error', onError) }
            worker.on('message', onMessage)
            worker.on('error', onError)
            worker.postMessage(seed)
          })
          results.set(seed, result)
          onResult?.(result)
        }
      } finally {
        await worker.terminate()
      }
    }),
  )
  return seeds.map((seed) => results.get(seed)!)
}
