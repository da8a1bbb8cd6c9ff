// Reading a job's log files, once or following them as the job writes (inotify through fs.watch,
// with a slow poll as a safety net). Every read is bounded; a follow ends once the job has ended
// and the file is drained, or when the caller stops iterating or aborts.
import { watch, type FSWatcher } from 'node:fs'
import { open } from 'node:fs/promises'
import type { LogChunk, LogStream } from './runtime.ts'

export interface LogFileSource {
  path: string
  stream: LogStream
  fromBytes: number
  /** Without follow: stop after this many bytes. */
  maxBytes: number
  follow: boolean
  readChunkBytes: number
  pollMs: number
  /** True once the writer has ended for good. */
  isDone(): boolean
  /** Resolves when the writer ends (wakes a follower waiting for more). */
  done: Promise<unknown>
  signal?: AbortSignal
}

export async function* readLogFile(source: LogFileSource): AsyncGenerator<LogChunk> {
  const handle = await open(source.path, 'r')
  const decoder = new TextDecoder('utf-8')
  const buffer = Buffer.alloc(source.readChunkBytes)
  let position = source.fromBytes
  let delivered = 0
  let watcher: FSWatcher | undefined
  let wake: (() => void) | undefined
  const poke = (): void => {
    const resolve = wake
    wake = undefined
    resolve?.()
  }
  const onAbort = (): void => poke()
  source.signal?.addEventListener('abort', onAbort)
  void source.done.then(poke)
  try {
    if (source.follow) watcher = watch(source.path, { persistent: false }, poke)
    for (;;) {
      if (source.signal?.aborted === true) return
      const doneBeforeRead = source.isDone()
      const want = source.follow ? source.readChunkBytes : Math.min(source.readChunkBytes, source.maxBytes - delivered)
      if (want <= 0) return
      const { bytesRead } = await handle.read(buffer, 0, want, position)
      if (bytesRead > 0) {
        const offsetBytes = position
        position += bytesRead
        delivered += bytesRead
        const text = decoder.decode(buffer.subarray(0, bytesRead), { stream: true })
        if (text !== '') yield { stream: source.stream, offsetBytes, text }
        continue
      }
      if (!source.follow || doneBeforeRead) {
        const rest = decoder.decode()
        if (rest !== '') yield { stream: source.stream, offsetBytes: position, text: rest }
        return
      }
      await new Promise<void>((resolve) => {
        wake = resolve
        const timer = setTimeout(poke, source.pollMs)
        timer.unref()
      })
    }
  } finally {
    watcher?.close()
    source.signal?.removeEventListener('abort', onAbort)
    await handle.close()
  }
}

/** Interleaves several async iterables as their items arrive. */
export async function* mergeAsync<T>(sources: AsyncIterable<T>[]): AsyncGenerator<T> {
  const iterators = sources.map((source) => source[Symbol.asyncIterator]())
  const pending = new Map<number, Promise<{ index: number; result: IteratorResult<T> }>>()
  const pull = (index: number): void => {
    const iterator = iterators[index]
    if (iterator !== undefined) pending.set(index, iterator.next().then((result) => ({ index, result })))
  }
  iterators.forEach((_, index) => pull(index))
  try {
    while (pending.size > 0) {
      const { index, result } = await Promise.race(pending.values())
      if (result.done === true) {
        pending.delete(index)
        continue
      }
      pull(index)
      yield result.value
    }
  } finally {
    await Promise.all([...pending.keys()].map((index) => iterators[index]?.return?.()))
  }
}
