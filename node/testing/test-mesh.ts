// Set-up shared by the integration tests with real daemons: a test file's resources (temporary
// directories, daemons, local meshes, a client host) released after all of its tests, and a mesh of
// N Daemon processes started one at a time, each bootstrapping to those before it, until they agree
// on a leader. Cleanup is blunt on purpose (SIGKILL): a test's daemons have nothing to keep.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { afterAll } from 'vitest'
import { createClientHost } from '../client-host.ts'
import { Daemon, agreedLeader, type DaemonProcessOptions } from '../daemon-process.ts'
import { loadOrCreateIdentity } from '../identity.ts'
import { LocalMesh, type LocalMeshOptions } from '../local-mesh.ts'

export interface TestMeshOptions {
  nodes: number
  /** Daemon names are this and the index (default 'd': d0, d1, ...). */
  namePrefix?: string
  /** mkdtemp prefix of each data directory, e.g. 'fabric-drain-mesh-'. */
  dirPrefix: string
  /** Node `index`'s flags after `--data DIR --voters IDS` (the bootstrap list comes after them). */
  args(index: number): string[]
  readyTimeoutMs: number
  leaderTimeoutMs: number
  /** How every daemon is started (its environment, say); default: as this process. */
  daemon?: DaemonProcessOptions
}

export interface TestMesh {
  /** In start order (d0, d1, ...); every node is a genesis voter. */
  daemons: Daemon[]
  ids: string[]
  dataDirs: string[]
}

export interface TestResources {
  /** A fresh temporary directory, removed after all. */
  tempDir(prefix: string): Promise<string>
  /** A daemon mesh (see TestMeshOptions); every daemon is SIGKILLed after all. */
  startMesh(options: TestMeshOptions): Promise<TestMesh>
  /** One more daemon (`fabric node start ARGS`), SIGKILLed after all; not waited for. */
  startDaemon(name: string, args: readonly string[], options?: DaemonProcessOptions): Daemon
  /** node/local-mesh.ts (all daemons at once, fixed ports); stopped after all. */
  startLocalMesh(options: LocalMeshOptions): Promise<LocalMesh>
  /** A client host for clientCall, stopped after all (first, before the daemons). */
  clientHost(options?: Parameters<typeof createClientHost>[0]): Promise<Libp2p>
}

/** Call at the top level of a test file: it registers the afterAll that releases everything. */
export function testResources(): TestResources {
  const clients: Libp2p[] = []
  const meshes: LocalMesh[] = []
  const started: Daemon[] = []
  const directories: string[] = []
  afterAll(async () => {
    for (const client of clients) await client.stop()
    for (const mesh of meshes) await mesh.stop()
    for (const daemon of started) if (daemon.alive && daemon.child.pid !== undefined) process.kill(daemon.child.pid, 'SIGKILL')
    await Promise.all(started.map((daemon) => (daemon.alive ? new Promise((done) => daemon.child.once('exit', done)) : undefined)))
    for (const dir of directories) await rm(dir, { recursive: true, force: true })
  })
  const tempDir = async (prefix: string): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), prefix))
    directories.push(dir)
    return dir
  }
  const startDaemon = (name: string, args: readonly string[], options: DaemonProcessOptions = {}): Daemon => {
    const daemon = new Daemon(name, args, options)
    started.push(daemon)
    return daemon
  }
  return {
    tempDir,
    startDaemon,
    async startMesh(options) {
      const dataDirs = await Promise.all(Array.from({ length: options.nodes }, () => tempDir(options.dirPrefix)))
      const ids = await Promise.all(dataDirs.map(async (dir) => (await loadOrCreateIdentity(dir)).nodeId as string))
      const daemons: Daemon[] = []
      for (let index = 0; index < options.nodes; index++) {
        const bootstrap = daemons.flatMap((daemon) => ['--bootstrap', daemon.address])
        const daemon = startDaemon(`${options.namePrefix ?? 'd'}${index}`, ['--data', dataDirs[index]!, '--voters', ids.join(','), ...options.args(index), ...bootstrap], options.daemon)
        daemons.push(daemon)
        await Daemon.waitFor([daemon], () => daemon.ready !== null, options.readyTimeoutMs, `${daemon.name} ready`)
      }
      await Daemon.waitFor(daemons, () => agreedLeader(daemons) !== null, options.leaderTimeoutMs, 'one agreed leader')
      return { daemons, ids, dataDirs }
    },
    async startLocalMesh(options) {
      const mesh = await LocalMesh.start(options)
      meshes.push(mesh)
      return mesh
    },
    async clientHost(options) {
      const client = await createClientHost(options)
      clients.push(client)
      return client
    },
  }
}
