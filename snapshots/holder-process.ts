// The parent's handle on a holder process (holder-main.ts): start it on a store directory, wait
// for its address, read its counters, stop it politely or kill it with SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import type { PeerInfo } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { SnapshotServerCounters } from './snapshot-server.ts'

const entry = join(import.meta.dirname, 'holder-main.ts')
/** Bounds on waiting for a child (generous for a loaded CI machine). */
export const holderReadyTimeoutMs = 20_000
const holderExitTimeoutMs = 10_000

export class HolderProcess {
  readonly child: ChildProcess
  readonly info: PeerInfo
  /** The same holder over iroh (its UDP addresses), when started with `iroh: true`. */
  readonly irohInfo: PeerInfo | null
  readonly #lines: AsyncIterator<string>

  private constructor(child: ChildProcess, info: PeerInfo, irohInfo: PeerInfo | null, lines: AsyncIterator<string>) {
    this.child = child
    this.info = info
    this.irohInfo = irohInfo
    this.#lines = lines
  }

  /**
   * Starts a holder serving the chunk store at `storeDirectory` (not open in this process).
   * `linkMbps` paces everything it sends to that many MB/s (shaped-link.ts); unpaced when absent.
   */
  static async start(storeDirectory: string, options: { iroh?: boolean; linkMbps?: number | null } = {}): Promise<HolderProcess> {
    const flags = [...(options.iroh === true ? ['--iroh'] : []), ...(options.linkMbps != null ? ['--link-mbps', String(options.linkMbps)] : [])]
    // The running Node (24, with type stripping) runs the child too.
    const child = spawn(process.execPath, [entry, '--store', resolve(storeDirectory), ...flags], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const timer = setTimeout(() => child.kill('SIGKILL'), holderReadyTimeoutMs)
    try {
      const first = await lines.next()
      if (first.done === true) throw new Error(`holder process exited before it was ready (store ${storeDirectory})`)
      const ready = JSON.parse(first.value) as { event: string; peerId: string; addresses: string[]; irohAddresses: string[] }
      if (ready.event !== 'ready') throw new Error(`holder process said ${first.value.slice(0, 200)}`)
      const id = peerIdFromString(ready.peerId)
      const irohInfo = options.iroh === true ? { id, multiaddrs: ready.irohAddresses.map((address) => multiaddr(address)) } : null
      return new HolderProcess(child, { id, multiaddrs: ready.addresses.map((address) => multiaddr(address)) }, irohInfo, lines)
    } finally {
      clearTimeout(timer)
    }
  }

  async counters(): Promise<SnapshotServerCounters & { cpuMs: number }> {
    this.child.stdin!.write('counters\n')
    const next = await this.#lines.next()
    if (next.done === true) throw new Error('holder process has exited')
    return JSON.parse(next.value) as SnapshotServerCounters & { cpuMs: number }
  }

  /** SIGKILL: the holder vanishes mid-whatever, as a crashed machine does. */
  async kill(): Promise<void> {
    await this.#exit(() => this.child.kill('SIGKILL'))
  }

  async stop(): Promise<void> {
    await this.#exit(() => this.child.stdin!.end())
  }

  async #exit(signal: () => void): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    signal()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), holderExitTimeoutMs)
    await exited
    clearTimeout(timer)
  }
}
