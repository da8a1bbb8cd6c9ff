// A worker thread that runs the seeds its parent sends, one at a time.
import { parentPort, workerData } from 'node:worker_threads'
import type { SimOptions } from './options.ts'
import { runSeed } from './report.ts'

const options = (workerData as { options: SimOptions }).options
parentPort?.on('message', (seed: number) => {
  parentPort?.postMessage(runSeed(options, seed))
})
