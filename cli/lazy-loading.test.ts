// What a CLI call loads: registering the commands must load none of their dependencies (a command's
// action imports them when it runs), and a client command must load the client modules alone, not
// the daemon's (Automerge, the store, YAML specs). A module load hook passed to Node writes the URL
// of every module the call loaded to a file.
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { nodeBinary, repositoryRoot } from '../node/testing/daemon-process.ts'

const moduleTracer = [
  "import { registerHooks } from 'node:module'",
  "import { writeFileSync } from 'node:fs'",
  'const loaded = []',
  'registerHooks({ load(url, context, nextLoad) { loaded.push(url); return nextLoad(url, context) } })',
  "process.on('exit', () => writeFileSync(process.env.FABRIC_MODULE_LIST, loaded.join('\\n')))",
].join('\n')

/** Runs `fabric ARGS` (bin/fabric.js, as a user does) and returns its exit code and the URLs of the modules it loaded. */
async function modulesLoadedBy(args: readonly string[]): Promise<{ code: number | null; modules: string[]; stderr: string }> {
  const directory = await mkdtemp(join(tmpdir(), 'fabric-modules-'))
  const listFile = join(directory, 'modules.txt')
  try {
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(nodeBinary, ['--import', `data:text/javascript,${encodeURIComponent(moduleTracer)}`, join(repositoryRoot, 'bin/fabric.js'), ...args], {
        cwd: repositoryRoot,
        env: { ...process.env, FABRIC_MODULE_LIST: listFile },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      child.once('error', reject)
      child.once('close', (code) => resolve({ code, stderr }))
    })
    const modules = (await readFile(listFile, 'utf8')).split('\n').filter((url) => url !== '')
    return { code, modules, stderr }
  } finally {
    await rm(directory, { recursive: true, force: true })
  }
}

const packagesIn = (modules: readonly string[]): Set<string> =>
  new Set(modules.flatMap((url) => {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(url)
    return match === null ? [] : [match[1]!]
  }))

describe('what a fabric call loads', () => {
  it('--help and a command\'s --help load commander and the project\'s light modules only', async () => {
    for (const args of [['--help'], ['submit', '--help'], ['node', 'start', '--help'], ['bench', 'mesh', '--help']]) {
      const { code, modules, stderr } = await modulesLoadedBy(args)
      expect(code, stderr).toBe(0)
      expect(modules.some((url) => url.endsWith('/cli/program.ts')), `fabric ${args.join(' ')} loaded the command tree`).toBe(true)
      expect([...packagesIn(modules)], `packages loaded by fabric ${args.join(' ')}`).toEqual(['commander'])
      // The project's heavy modules stay unloaded too (the barrels bring libp2p and Automerge).
      const heavy = modules.filter((url) => /\/(node|consensus|placement|sim|runtime|snapshots)\/index\.ts$|\/node\/shuttle\.ts$/.test(url))
      expect(heavy, `fabric ${args.join(' ')}`).toEqual([])
    }
  })

  it('a client command loads libp2p and the wire code but none of the daemon\'s modules', async () => {
    // A daemon that is not there: the command loads everything it needs to ask, then fails to connect.
    const { code, modules } = await modulesLoadedBy(['leader', '--node', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWS4rjrFfsW5UQMNnU2HxAY67jnXqVYpTrDdSRJzpnxT7i', '--timeout', '5000'])
    expect(code).toBe(1)
    const packages = packagesIn(modules)
    expect(packages.has('libp2p'), 'the client host was loaded').toBe(true)
    expect(modules.some((url) => url.endsWith('/node/client-wire.ts'))).toBe(true)
    for (const daemonOnly of ['@automerge/automerge', 'yaml', 'level', 'classic-level', 'dockerode', 'systeminformation', '@libp2p/gossipsub', '@libp2p/kad-dht']) {
      expect(packages.has(daemonOnly), `${daemonOnly} loaded by a client command`).toBe(false)
    }
  })
})
