// A mesh of Shuttle daemons on this machine, each a separate process on loopback with its own data
// directory under one root: what `fabric demo` and `fabric bench mesh` start. It makes the
// identities and picks each daemon's port first, so every daemon starts at once bootstrapping to all
// the others (or to those `bootstrapOf` names: peer discovery finds the rest), waits for one agreed leader, kills and restarts daemons on their data directories
// and ports, and stops everything it started.
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Daemon, agreedLeader } from './daemon-process.ts'
import type { PeerConfig } from '../consensus/index.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { localMeshRequestFanout, maxLocalMeshNodes } from './local-mesh-limits.ts'

export { localMeshRequestFanout, maxLocalMeshNodes } from './local-mesh-limits.ts'
/** How long a daemon may take to print its ready line (a loaded machine starts Node slowly). */
export const daemonReadyTimeoutMs = 30_000
/** After SIGTERM, how long a daemon has to stop before it is SIGKILLed. */
export const stopGraceMs = 5_000

export interface LocalMeshOptions {
  nodes: number
  /** Genesis committee size (default: every node up to 5, odd). */
  voters?: number
  /** Where the data directories go (default: a fresh temporary directory, removed on stop). */
  rootDir?: string
  /** What each daemon offers. */
  cpuMillis: number
  memoryMiB: number
  electionTimeoutMs?: number
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
  /** Where a request goes first (the daemon's --request-fanout; default localMeshRequestFanout). */
  requestFanout?: PeerConfig['requestFanout']
  /** fsync each persist (default true, as a real node: a crash loses no write; false only for tests that never crash the machine). */
  syncWrites?: boolean
  /** The bootstrap addresses daemon `index` is given, from every daemon's address (default: all the others). */
  bootstrapOf?(index: number, addresses: readonly string[]): string[]
  /** Called as daemons start, become ready and stop (the demo prints these). */
  onProgress?(message: string): void
}

export class LocalMeshError extends Error {
  override name = 'LocalMeshError'
}

export class LocalMesh {
  readonly rootDir: string
  readonly daemons: Daemon[] = []
  readonly #options: LocalMeshOptions
  readonly #ownsRoot: boolean
  readonly #dataDirs: string[]
  readonly #voterIds: string[]
  /** Each daemon's address (fixed port, with /p2p/<id>): known before any starts, kept across restarts. */
  readonly #addresses: string[]
  #stopped: Promise<void> | null = null

  private constructor(options: LocalMeshOptions, rootDir: string, ownsRoot: boolean, dataDirs: string[], voterIds: string[], addresses: string[]) {
    this.#options = options
    this.rootDir = rootDir
    this.#ownsRoot = ownsRoot
    this.#dataDirs = dataDirs
    this.#voterIds = voterIds
    this.#addresses = addresses
  }

  /** Creates the data directories and identities and starts every daemon (stops what it started if one fails). */
  static async start(options: LocalMeshOptions): Promise<LocalMesh> {
    if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > maxLocalMeshNodes) throw new LocalMeshError(`a local mesh has 1 to ${maxLocalMeshNodes} nodes, not ${options.nodes}`)
    const ownsRoot = options.rootDir === undefined
    const rootDir = options.rootDir ?? (await mkdtemp(join(tmpdir(), 'fabric-mesh-')))
    const dataDirs = Array.from({ length: options.nodes }, (_, index) => join(rootDir, `node-${index + 1}`))
    const ids = await Promise.all(dataDirs.map(async (dir) => (await loadOrCreateIdentity(dir)).nodeId as string))
    const defaultVoters = Math.min(options.nodes, 5)
    const voterCount = options.voters ?? (defaultVoters % 2 === 0 ? defaultVoters - 1 : defaultVoters)
    if (voterCount < 1 || voterCount > options.nodes) throw new LocalMeshError(`voters must be between 1 and ${options.nodes}, not ${voterCount}`)
    const ports = await freePorts(options.nodes)
    const addresses = ids.map((id, index) => `/ip4/127.0.0.1/tcp/${ports[index]}/p2p/${id}`)
    const mesh = new LocalMesh(options, rootDir, ownsRoot, dataDirs, ids.slice(0, voterCount), addresses)
    try {
      const daemons = dataDirs.map((_, index) => mesh.#spawn(index))
      await Daemon.waitFor(daemons, () => daemons.every((daemon) => daemon.ready !== null || !daemon.alive), daemonReadyTimeoutMs, 'every daemon to be ready')
      for (const daemon of daemons) mesh.#checkStarted(daemon)
    } catch (error) {
      await mesh.stop()
      throw error
    }
    return mesh
  }

  /** Where the daemons send a request first. */
  get requestFanout(): PeerConfig['requestFanout'] { return this.#options.requestFanout ?? localMeshRequestFanout }

  /** The genesis committee's size. */
  get voters(): number {
    return this.#voterIds.length
  }

  get live(): Daemon[] {
    return this.daemons.filter((daemon) => daemon.alive)
  }

  dataDirOf(daemon: Daemon): string {
    const index = this.daemons.indexOf(daemon)
    if (index < 0) throw new Error(`assertion: ${daemon.name} is not part of this mesh`)
    return this.#dataDirs[index]!
  }

  /** The one leader every live daemon agrees on, once there is one (and its term is above `afterTerm`). */
  async waitForLeader(timeoutMs: number, afterTerm = 0): Promise<Daemon> {
    await Daemon.waitFor(
      this.daemons,
      () => {
        const leader = agreedLeader(this.live)
        return leader !== null && leader.status!.term > afterTerm
      },
      timeoutMs,
      'one leader that every live daemon follows',
    )
    return agreedLeader(this.live)!
  }

  /** Kills a daemon with SIGKILL and waits for its process to end. */
  async kill(daemon: Daemon): Promise<void> {
    daemon.kill('SIGKILL')
    await daemon.exited()
  }

  /** Starts a stopped daemon again on its data directory (without --voters: the store holds the cluster). */
  async restart(daemon: Daemon): Promise<Daemon> {
    if (daemon.alive) throw new Error(`assertion: ${daemon.name} still runs`)
    const index = this.daemons.indexOf(daemon)
    if (index < 0) throw new Error(`assertion: ${daemon.name} is not part of this mesh`)
    const restarted = this.#spawn(index, true)
    await Daemon.waitFor([restarted], () => restarted.ready !== null || !restarted.alive, daemonReadyTimeoutMs, `${restarted.name} to be ready again`)
    this.#checkStarted(restarted)
    return restarted
  }

  /** SIGTERM to every daemon, SIGKILL to those still running after the grace; removes a root it created. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop()
    return this.#stopped
  }

  async #stop(): Promise<void> {
    const running = this.live
    for (const daemon of running) daemon.kill('SIGTERM')
    const graceful = Promise.all(running.map((daemon) => daemon.exited()))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([graceful, new Promise((resolve) => (timer = setTimeout(resolve, stopGraceMs)))])
    clearTimeout(timer)
    for (const daemon of this.live) daemon.kill('SIGKILL')
    await Promise.all(this.daemons.map((daemon) => daemon.exited()))
    if (this.#ownsRoot) await rm(this.rootDir, { recursive: true, force: true, maxRetries: 3 })
  }

  /** Starts daemon `index` (a restart takes the place of the stopped one: same name, same data directory). */
  #spawn(index: number, restart = false): Daemon {
    const options = this.#options
    const name = `node-${index + 1}`
    const firstStart = !restart
    const bootstrap = options.bootstrapOf?.(index, this.#addresses) ?? this.#addresses.filter((_, other) => other !== index)
    const args = [
      '--data', this.#dataDirs[index]!,
      '--listen', this.#addresses[index]!.replace(/\/p2p\/.*$/, ''),
      '--cpu-millis', String(options.cpuMillis),
      '--memory-mib', String(options.memoryMiB),
      '--election-timeout', String(options.electionTimeoutMs ?? 150),
      '--request-fanout', this.requestFanout,
      '--log-level', options.logLevel ?? 'warn',
      ...(firstStart ? ['--voters', this.#voterIds.join(',')] : []),
      ...bootstrap.flatMap((address) => ['--bootstrap', address]),
      ...(options.syncWrites === false ? ['--no-sync-writes'] : []),
    ]
    const daemon = new Daemon(name, args)
    this.daemons[index] = daemon
    options.onProgress?.(`${firstStart ? 'started' : 'restarted'} ${name} (pid ${daemon.child.pid ?? '?'}) in ${this.#dataDirs[index]}`)
    return daemon
  }

  #checkStarted(daemon: Daemon): void {
    if (daemon.ready !== null) return
    throw new LocalMeshError(`${daemon.name} exited before it was ready (${JSON.stringify(daemon.exit)}):\n${daemon.stderrTail.slice(-10).join('\n')}`)
  }
}

/** `count` distinct TCP ports free on 127.0.0.1 right now (each held until all are found). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve(server))
    })),
  )
  const ports = servers.map((server) => {
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('assertion: a TCP server has a port')
    return address.port
  })
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}
