// Proves the CLI's progress line: a bar filled to the fraction of bytes done, sizes, chunks, rate and
// ETA; phases without a byte count (the CRIU dump, the restore) and the recorded end read plainly; and
// on a pipe only each phase's last line is written.
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { ProgressFrame } from '../node/index.ts'
import { ProgressBar, formatBytes, formatDuration, renderProgress } from './progress-bar.ts'

const node = '12D3KooWAAAAAAAAAAAAnodeone1'
const peer = '12D3KooWBBBBBBBBBBBBnodetwo2'
const frame = (fields: Partial<ProgressFrame>): ProgressFrame => ({ type: 'progress', jobId: 'job-1', node, phase: 'replicate', peer, bytesDone: 0, bytesTotal: 0, chunksDone: 0, chunksTotal: 0, bytesPerSecond: 0, etaMs: null, ...fields })

describe('the progress line', () => {
  it('shows the fraction done, sizes, chunks, rate and ETA', () => {
    const line = renderProgress(frame({ bytesDone: 3 * 2 ** 20, bytesTotal: 12 * 2 ** 20, chunksDone: 48, chunksTotal: 192, bytesPerSecond: 2 ** 20, etaMs: 9_000 }))
    expect(line).toBe('replicating job-1 (…nodeone1 -> …nodetwo2) [######..................]  25% 3.0 MiB/12 MiB 48/192 chunks 1.0 MiB/s ETA 9s')
    expect(renderProgress(frame({ phase: 'fetch', peer: undefined, bytesDone: 5, bytesTotal: 10, etaMs: null }))).toMatch(/^fetching job-1 \(…nodeone1\) \[#{12}\.{12}\]  50% 5 B\/10 B 0\/0 chunks 0 B\/s ETA -$/)
  })

  it('reads plainly for the dump, the restore and the recorded end', () => {
    expect(renderProgress(frame({ phase: 'checkpoint', peer: undefined }))).toBe('dumping job-1 (…nodeone1) ...')
    expect(renderProgress(frame({ phase: 'restore', peer: undefined }))).toBe('restoring job-1 (…nodeone1) ...')
    expect(renderProgress(frame({ phase: 'done', peer: undefined, bytesDone: 4096, bytesTotal: 4096, chunksDone: 2, chunksTotal: 2 }))).toBe('recorded job-1 (…nodeone1) [########################] 100% 4.0 KiB/4.0 KiB 2/2 chunks')
  })

  it('formats sizes and durations', () => {
    expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(250 * 2 ** 20), formatBytes(3 * 2 ** 30)]).toEqual(['0 B', '1023 B', '1.5 KiB', '250 MiB', '3.0 GiB'])
    expect([formatDuration(400), formatDuration(61_000), formatDuration(3_725_000)]).toEqual(['1s', '1m01s', '1h02m'])
  })

  it('on a pipe writes only the last line of each phase', () => {
    const output = new PassThrough()
    let written = ''
    output.on('data', (chunk: Buffer) => (written += chunk.toString()))
    const bar = new ProgressBar(output as unknown as NodeJS.WriteStream)
    bar.update(frame({ phase: 'pack', peer: undefined, bytesDone: 1, bytesTotal: 4 }))
    bar.update(frame({ phase: 'pack', peer: undefined, bytesDone: 4, bytesTotal: 4 }))
    bar.update(frame({ bytesDone: 2, bytesTotal: 4 }))
    bar.done()
    bar.done()
    const lines = written.trimEnd().split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^packing .* 100% 4 B\/4 B/)
    expect(lines[1]).toMatch(/^replicating .*  50% 2 B\/4 B/)
  })
})
