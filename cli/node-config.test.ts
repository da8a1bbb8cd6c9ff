// `fabric node start --config FILE`: the example in deploy/ is valid and names every flag; bad files
// are refused naming each bad key path; flags on the command line win over the file; and a real
// daemon started from a file offers what the file says.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Command } from 'commander'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from '../node/client-connection.ts'
import { loadOrCreateIdentity } from '../node/identity.ts'
import { Daemon, repositoryRoot, runCli } from '../node/testing/daemon-process.ts'
import { testResources } from '../node/testing/test-mesh.ts'
import { applyNodeConfig, nodeConfigSchema, readNodeConfig } from './node-config.ts'

const resources = testResources()
const example = join(repositoryRoot, 'deploy/shuttle.yaml')

describe('the node config file', () => {
  it('the example in deploy/ is valid and has a key for every flag of `fabric node start`', async () => {
    const config = readNodeConfig(example)
    expect(config).toMatchObject({ region: 'us-east-1', 'az-id': 'use1-az1', labels: { tier: 'standard', team: 'ml' }, 'price-per-hour': '0.384', 'sync-writes': true })
    const help = await runCli(['node', 'start', '--help'])
    const flags = [...help.stdout.matchAll(/--(?:no-)?([a-z][a-z-]*)/g)].map((match) => match[1]!)
    const keys = new Set([...Object.keys(nodeConfigSchema.shape), 'label', 'config', 'help'])
    expect(flags.filter((flag) => !keys.has(flag))).toEqual([])
  })

  it('refuses a bad file naming each bad key path', async () => {
    const dir = await resources.tempDir('fabric-config-')
    const bad = join(dir, 'bad.yaml')
    await writeFile(bad, 'region: 7\ncpu-millis: -1\nlabels:\n  tier: [a]\ncolour: blue\n')
    let message = ''
    try {
      readNodeConfig(bad)
    } catch (error) {
      message = (error as Error).message
    }
    for (const line of [/^ {2}region: .*expected string/m, /^ {2}cpu-millis: /m, /^ {2}labels\.tier: /m, /^ {2}\(top level\): unknown key\(s\) colour$/m]) expect(message).toMatch(line)
    await writeFile(bad, 'region: [unclosed\n')
    expect(() => readNodeConfig(bad)).toThrow(/is not valid YAML/)
    expect(() => readNodeConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read .*missing\.yaml \(ENOENT\)/)
    const result = await runCli(['node', 'start', '--config', join(dir, 'bad.yaml')])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/--config: .*bad\.yaml is not valid YAML/)
  })

  it('sets what the command line did not give; a flag wins', () => {
    const command = new Command().exitOverride().option('--region <name>', 'region', 'local').option('--az-id <id>', 'az', 'local-1').option('--label <kv>', 'label', (value: string, previous: string[]) => [...previous, value], []).option('--no-sync-writes', 'no fsync')
    command.parse(['node', 'x', '--region', 'eu-west-1'])
    applyNodeConfig(command, nodeConfigSchema.parse({ region: 'us-east-1', 'az-id': 'use1-az1', labels: { tier: 'gold' }, 'sync-writes': false }))
    expect(command.opts()).toEqual({ region: 'eu-west-1', azId: 'use1-az1', label: ['tier=gold'], syncWrites: false })
  })

  it('a daemon started from a file offers what it says, and a flag overrides the file', async () => {
    const dataDir = await resources.tempDir('fabric-config-daemon-')
    const { nodeId } = await loadOrCreateIdentity(dataDir)
    const file = join(dataDir, 'shuttle.yaml')
    await writeFile(file, [`data: ${dataDir}`, 'listen: /ip4/127.0.0.1/tcp/0', `voters: [${nodeId}]`, 'region: eu-central-1', 'provider: hetzner', 'cpu-millis: 500', 'labels: {tier: gold}', 'sync-writes: false', 'log-level: warn'].join('\n'))
    const daemon = resources.startDaemon('configured', ['--config', file, '--region', 'eu-west-3'])
    await Daemon.waitFor([daemon], () => daemon.ready !== null || !daemon.alive, 30_000, 'the configured daemon ready')
    expect(daemon.alive, daemon.stderrTail.join('\n')).toBe(true)
    const client = await resources.clientHost()
    const [self] = (await clientCall(client, multiaddr(daemon.address), { kind: 'nodes' })).nodes
    expect(self).toMatchObject({ id: nodeId, provider: 'hetzner', region: 'eu-west-3', capacity: { cpuMillis: 500 } })
  }, 60_000)
})
