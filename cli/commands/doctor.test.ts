// `fabric doctor` run as a user runs it: the JSON report agrees with what the runtime probes find
// on this machine, the text names each part, and a missing engine or CRIU is reported, not fatal.
import { execFile } from 'node:child_process'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { dockerSocketPath, probeCriu, probeDockerEngine } from '../../runtime/index.ts'

const root = resolve(import.meta.dirname, '../..')
const nodeBinary = join(root, 'node_modules/.bin/node')
const entry = join(root, 'cli/main.ts')
const run = promisify(execFile)
const fabric = (...args: string[]): Promise<{ stdout: string; stderr: string }> => run(nodeBinary, [entry, ...args], { cwd: root, timeout: 60_000 })

describe('fabric doctor', () => {
  it('reports CRIU, the Docker engine, cgroups, PID namespaces and GPUs as JSON that matches the probes', async () => {
    const { stdout } = await fabric('doctor', '--json')
    const report = JSON.parse(stdout)
    const criu = await probeCriu()
    const socket = dockerSocketPath()
    const engine = await probeDockerEngine(socket)
    expect(report.criu.available).toBe(criu.available)
    if (criu.available) expect(report.criu.version).toBe(criu.version)
    expect(report.docker).toMatchObject({ available: engine.available, endpoint: socket })
    if (engine.available) expect(report.docker.version).toBe(engine.version)
    expect(['v1', 'v2', 'hybrid', 'none']).toContain(report.cgroups.version)
    expect(typeof report.pidNamespaces.available).toBe('boolean')
    expect(Array.isArray(report.gpus.gpus)).toBe(true)
    expect(report.runtimes.process.run).toBe(true)
    expect(report.runtimes.docker.run).toBe(engine.available)
  }, 60_000)

  it('says what is missing, and still exits 0, when the engine socket and CRIU are not there', async () => {
    const { stdout } = await fabric('doctor', '--docker-socket', '/nonexistent/docker.sock', '--criu', '/nonexistent/criu')
    expect(stdout).toMatch(/^no {2}CRIU .*\/nonexistent\/criu not found/m)
    expect(stdout).toMatch(/^no {2}Docker engine +\/nonexistent\/docker\.sock: the socket does not exist/m)
    expect(stdout).toMatch(/^(ok|no) {2}cgroups /m)
    expect(stdout).toMatch(/^(ok|no) {2}PID namespaces /m)
    expect(stdout).toMatch(/^(ok|no) {2}GPUs /m)
    expect(stdout).toMatch(/^runtime docker: +cannot run jobs; checkpoints no \(no Docker engine: /m)
  }, 60_000)
})
