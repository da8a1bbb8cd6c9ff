// Proves the daemon's progress frames: a phase reports bytes and chunks with the average rate and the
// ETA at that rate, throttled to one update per interval (the last always goes out); a fetch's
// progress maps onto a frame; and a follower that comes after a quick restore still hears its
// latest frames, while a new restore of the replica starts the memory afresh.
import { describe, expect, it } from 'vitest'
import type { ProgressFrame } from './client-wire.ts'
import { PhaseMeter, RestoreProgressHub, fetchFrame, maxRestoresRemembered, progressIntervalMs } from './transfer-progress.ts'

const cid = `b3:${'0'.repeat(64)}` as Parameters<typeof fetchFrame>[0]['cid']

describe('a phase meter', () => {
  it('reports rate and ETA from the injected clock, throttled, with the last update always sent', () => {
    let now = 1_000
    const frames: ProgressFrame[] = []
    const meter = new PhaseMeter({ jobId: 'j', node: 'n', phase: 'replicate', peer: 'p' }, () => now, (frame) => frames.push(frame))
    meter.total(4_000, 4)
    now += 500
    meter.update(1_000, 1)
    now += progressIntervalMs - 1
    meter.update(2_000, 2) // inside the interval: dropped
    now += 1
    meter.update(3_000, 3)
    meter.finish()
    expect(frames.map((frame) => [frame.bytesDone, frame.chunksDone, frame.bytesPerSecond, frame.etaMs])).toEqual([
      [1_000, 1, 2_000, 1_500],
      [3_000, 3, 4_000, 250],
      [4_000, 4, 5_333, 0],
    ])
    expect(frames[0]).toMatchObject({ type: 'progress', jobId: 'j', node: 'n', phase: 'replicate', peer: 'p', bytesTotal: 4_000, chunksTotal: 4 })
  })

  it('has no ETA before anything is done, and never shows less total than done', () => {
    let now = 0
    const frames: ProgressFrame[] = []
    const meter = new PhaseMeter({ jobId: 'j', node: 'n', phase: 'pack' }, () => now, (frame) => frames.push(frame))
    meter.update(0, 0, true)
    now += 300
    meter.update(500, 7, true) // the total is not known yet
    expect(frames[0]!.etaMs).toBeNull()
    expect(frames[0]).not.toHaveProperty('peer')
    expect(frames[1]).toMatchObject({ bytesTotal: 500, chunksTotal: 7 })
  })
})

describe('fetch progress and restore followers', () => {
  it('maps a fetch onto a frame; a finished fetch has no time left', () => {
    const progress = { cid, phase: 'chunks' as const, chunksTotal: 10, bytesTotal: 100, chunksFetched: 4, bytesFetched: 40, chunksAlreadyStored: 2, bytesPerSecond: 20, etaMs: 3_000, corruptChunks: 0, holdersFailed: 0 }
    expect(fetchFrame(progress, { jobId: 'j', node: 'n', phase: 'fetch' })).toEqual({ type: 'progress', jobId: 'j', node: 'n', phase: 'fetch', bytesDone: 40, bytesTotal: 100, chunksDone: 4, chunksTotal: 10, bytesPerSecond: 20, etaMs: 3_000 })
    expect(fetchFrame({ ...progress, phase: 'done', etaMs: null }, { jobId: 'j', node: 'n', phase: 'fetch' }).etaMs).toBe(0)
  })

  it('replays the latest frame of each phase to a late follower and forgets a replica past the bound', () => {
    const hub = new RestoreProgressHub()
    const frame = (jobId: string, phase: ProgressFrame['phase'], bytesDone: number): ProgressFrame => ({ type: 'progress', jobId, node: 'n', phase, bytesDone, bytesTotal: 10, chunksDone: 0, chunksTotal: 0, bytesPerSecond: 0, etaMs: null })
    hub.publish('a', frame('a', 'fetch', 5))
    hub.publish('a', frame('a', 'fetch', 10))
    hub.publish('a', frame('a', 'restore', 0))
    const heard: ProgressFrame[] = []
    const stop = hub.listen('a', (received) => heard.push(received))
    expect(heard.map((received) => [received.phase, received.bytesDone])).toEqual([['fetch', 10], ['restore', 0]])
    // A new restore of the replica: the old frames are gone, and the follower hears the new ones live.
    hub.publish('a', frame('a', 'fetch', 1))
    expect(heard.at(-1)!.bytesDone).toBe(1)
    stop()
    hub.publish('a', frame('a', 'fetch', 2))
    expect(heard).toHaveLength(3)
    const again: ProgressFrame[] = []
    hub.listen('a', (received) => again.push(received))
    expect(again.map((received) => [received.phase, received.bytesDone])).toEqual([['fetch', 2]])
    for (let index = 0; index < maxRestoresRemembered; index++) hub.publish(`other-${index}`, frame(`other-${index}`, 'fetch', 1))
    const late: ProgressFrame[] = []
    hub.listen('a', (received) => late.push(received))
    expect(late).toEqual([])
  })
})
