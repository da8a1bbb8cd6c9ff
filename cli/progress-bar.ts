// The CLI's progress bar for snapshot work streamed by a daemon (`fabric checkpoint`, `fabric migrate
// --follow`): one line per phase (checkpoint, pack, replicate to a peer, fetch, restore) redrawn in
// place on a terminal, bytes and chunks done, rate and ETA; on a pipe, only each phase's last line.
// `renderProgress` is pure (tested); `ProgressBar` owns the stream.
import type { ProgressFrame } from '../node/index.ts'
import { shortId } from './table.ts'

const barWidth = 24

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

export function formatDuration(ms: number): string {
  const seconds = Math.ceil(ms / 1000)
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  return minutes < 60 ? `${minutes}m${String(seconds % 60).padStart(2, '0')}s` : `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`
}

const phaseLabel: Record<ProgressFrame['phase'], string> = { checkpoint: 'dumping', pack: 'packing', replicate: 'replicating', fetch: 'fetching', restore: 'restoring', done: 'recorded' }

/** One line for a progress frame: what, where, a bar, bytes and chunks, rate and ETA. */
export function renderProgress(frame: ProgressFrame): string {
  const where = frame.peer === undefined ? shortId(frame.node) : `${shortId(frame.node)} -> ${shortId(frame.peer)}`
  const head = `${phaseLabel[frame.phase]} ${frame.jobId} (${where})`
  if (frame.phase === 'checkpoint' || frame.phase === 'restore') return `${head} ...`
  const fraction = frame.bytesTotal > 0 ? Math.min(1, frame.bytesDone / frame.bytesTotal) : frame.phase === 'done' ? 1 : 0
  const filled = Math.round(fraction * barWidth)
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%`
  const sizes = `${formatBytes(frame.bytesDone)}/${formatBytes(frame.bytesTotal)}`
  const chunks = `${frame.chunksDone}/${frame.chunksTotal} chunks`
  if (frame.phase === 'done') return `${head} ${bar} ${sizes} ${chunks}`
  const rate = `${formatBytes(frame.bytesPerSecond)}/s`
  const eta = frame.etaMs === null ? 'ETA -' : `ETA ${formatDuration(frame.etaMs)}`
  return `${head} ${bar} ${sizes} ${chunks} ${rate} ${eta}`
}

export class ProgressBar {
  readonly #output: NodeJS.WriteStream
  readonly #live: boolean
  /** The line on screen (live) or the phase whose last line is held back (pipe). */
  #current: { key: string; line: string } | null = null

  constructor(output: NodeJS.WriteStream = process.stderr) {
    this.#output = output
    this.#live = output.isTTY === true
  }

  update(frame: ProgressFrame): void {
    const key = `${frame.jobId}|${frame.node}|${frame.phase}|${frame.peer ?? ''}`
    const line = renderProgress(frame)
    if (this.#current !== null && this.#current.key !== key) this.#settle()
    this.#current = { key, line }
    if (this.#live) this.#output.write(`\r\x1b[2K${line}`)
  }

  /** Ends the current line (a new phase, a message, or the end of the stream). */
  done(): void {
    this.#settle()
  }

  #settle(): void {
    if (this.#current === null) return
    this.#output.write(this.#live ? '\n' : `${this.#current.line}\n`)
    this.#current = null
  }
}
