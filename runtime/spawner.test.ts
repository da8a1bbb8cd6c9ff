import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { procStatFields } from './isolation.ts'
import { ProcessRuntime } from './process-runtime.ts'
import { freshJobId } from './testing/runtime-compliance.ts'
import { Spawner, type LaunchedProcess } from './spawner.ts'
import { leaseWatchdogLimits } from './lease-watchdog.ts'
import { parseSpawnerAnswer, parseSpawnerRequest } from './spawner-wire.ts'

const parentOf = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(procStatFields(stat)[1])
}

const exitOf = (child: LaunchedProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))

const spawned = (child: LaunchedProcess): Promise<number> =>
  new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!))
    child.once('error', reject)
  })

describe('the spawner', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup()
  })

  async function started(): Promise<{ spawner: Spawner; dir: string; problems: string[] }> {
    const problems: string[] = []
    const spawner = Spawner.start({ onProblem: (reason) => problems.push(reason) })
    const dir = await mkdtemp(join(tmpdir(), 'fabric-spawner-'))
    cleanups.push(async () => {
      await spawner.close()
      await rm(dir, { recursive: true, force: true })
    })
    expect(await spawner.ready()).toBe(true)
    return { spawner, dir, problems }
  }

  it('forks the command as its own child (not ours), appends its output to the files, and reports its exit', async () => {
    const { spawner, dir } = await started()
    const stdoutPath = join(dir, 'out.log')
    const stderrPath = join(dir, 'err.log')
    // It waits for a flag, so it is still there when its parent is read.
    const flag = join(dir, 'go')
    const child = spawner.launch({ file: '/bin/sh', args: ['-c', 'echo "out $0"; echo err >&2; while [ ! -e go ]; do sleep 0.05; done; exit 7', 'arg0'], argv0: 'sh', cwd: dir, env: { PATH: '/usr/bin:/bin' }, stdoutPath, stderrPath })
    const exit = exitOf(child)
    const pid = await spawned(child)
    expect(parentOf(pid)).not.toBe(process.pid)
    await writeFile(flag, '')
    expect(await exit).toEqual({ code: 7, signal: null })
    expect(child.exitCode).toBe(7)
    expect(await readFile(stdoutPath, 'utf8')).toBe('out arg0\n')
    expect(await readFile(stderrPath, 'utf8')).toBe('err\n')
  })

  it('reports a command that cannot start as an error, and keeps serving', async () => {
    const { spawner, dir } = await started()
    const paths = { stdoutPath: join(dir, 'o'), stderrPath: join(dir, 'e') }
    const missing = spawner.launch({ file: join(dir, 'no-such-program'), args: [], argv0: 'x', cwd: dir, env: {}, ...paths })
    await expect(spawned(missing)).rejects.toThrow(/ENOENT/)
    const next = spawner.launch({ file: '/bin/true', args: [], argv0: 'true', cwd: dir, env: {}, ...paths })
    expect(await exitOf(next)).toEqual({ code: 0, signal: null })
  })

  it('a spawner asked to close exits cleanly and reports no problem', async () => {
    const { spawner, problems } = await started()
    await spawner.close()
    expect(spawner.gone).toBe(true)
    expect(problems).toEqual([])
  })

  it('a killed spawner fails what it was starting and ends what it ran, said to the waiters', async () => {
    const { spawner, dir, problems } = await started()
    const paths = { stdoutPath: join(dir, 'o'), stderrPath: join(dir, 'e') }
    const running = spawner.launch({ file: '/bin/sleep', args: ['30'], argv0: 'sleep', cwd: dir, env: {}, ...paths })
    const pid = await spawned(running)
    const exit = exitOf(running)
    process.kill(parentOf(pid), 'SIGKILL')
    expect(await exit).toEqual({ code: null, signal: 'SIGKILL' })
    process.kill(pid, 'SIGKILL') // it had no parent-death signal of its own here
    const after = spawner.launch({ file: '/bin/true', args: [], argv0: 'true', cwd: dir, env: {}, ...paths })
    await expect(spawned(after)).rejects.toThrow(/spawner exited/)
    expect(problems.join(' ')).toMatch(/spawner exited/)
  })
})

describe('the process runtime and its spawner', () => {
  it('starts a new spawner when its spawner died: the next job runs', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-spawner-runtime-'))
    const silent = { debug() {}, info() {}, warn() {}, error() {} }
    const runtime = new ProcessRuntime({ dataDir, pidNamespace: 'off', cgroups: 'off' }, { logger: silent })
    try {
      const first = await runtime.start({ jobId: freshJobId('first'), command: ['sleep', '30'] })
      const spawnerPid = parentOf(first.pid)
      expect(spawnerPid).not.toBe(process.pid)
      process.kill(spawnerPid, 'SIGKILL')
      // Its job went with it (parent-death signal), and is reported ended.
      expect((await first.exited).state).not.toBe('exited')
      // The second job waits for a flag, so it is still there when its parent is read.
      const flag = join(dataDir, 'go')
      const second = await runtime.start({ jobId: freshJobId('second'), command: ['sh', '-c', 'while [ ! -e "$0" ]; do sleep 0.05; done; echo again', flag] })
      expect(parentOf(second.pid)).not.toBe(spawnerPid)
      await writeFile(flag, '')
      expect(await second.exited).toMatchObject({ state: 'exited', exitCode: 0 })
    } finally {
      await runtime.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})

describe('spawner messages', () => {
  it('refuses requests and answers that are not what the other side sends', () => {
    const good = { id: 1, type: 'launch', file: '/bin/true', args: [], argv0: 'true', cwd: '/', env: {}, stdoutPath: '/o', stderrPath: '/e' }
    expect(parseSpawnerRequest(JSON.stringify(good))).toEqual(good)
    expect((parseSpawnerRequest('{') as Error).message).toMatch(/not JSON/)
    expect((parseSpawnerRequest(JSON.stringify({ ...good, id: 0 })) as Error).message).toMatch(/id/)
    expect((parseSpawnerRequest(JSON.stringify({ ...good, args: [1] })) as Error).message).toMatch(/args/)
    expect((parseSpawnerRequest(JSON.stringify({ ...good, env: { A: 1 } })) as Error).message).toMatch(/env/)
    expect(parseSpawnerAnswer('{"id":3,"type":"exit","code":null,"signal":"SIGTERM"}')).toEqual({ id: 3, type: 'exit', code: null, signal: 'SIGTERM' })
    expect(parseSpawnerAnswer('{"id":3,"type":"spawned"}')).toBeInstanceOf(Error)
    expect(parseSpawnerAnswer('{"id":3,"type":"other"}')).toBeInstanceOf(Error)
  })

  it("checks the lease watchdog's requests and answers, and their bounds", () => {
    const guard = { id: 2, type: 'guard', key: 'job-1', processes: [{ pid: 10, startTicks: 5, group: true }] }
    expect(parseSpawnerRequest(JSON.stringify(guard))).toEqual(guard)
    expect(parseSpawnerRequest(JSON.stringify({ id: 3, type: 'lease', deadlineMs: null }))).toEqual({ id: 3, type: 'lease', deadlineMs: null })
    expect(parseSpawnerRequest(JSON.stringify({ id: 3, type: 'lease', deadlineMs: 1234.5 }))).toEqual({ id: 3, type: 'lease', deadlineMs: 1234.5 })
    expect((parseSpawnerRequest(JSON.stringify({ id: 3, type: 'lease', deadlineMs: 'soon' })) as Error).message).toMatch(/deadlineMs/)
    expect((parseSpawnerRequest(JSON.stringify({ id: 3, type: 'lease' })) as Error).message).toMatch(/deadlineMs/)
    expect((parseSpawnerRequest(JSON.stringify({ ...guard, key: '' })) as Error).message).toMatch(/key/)
    expect((parseSpawnerRequest(JSON.stringify({ ...guard, key: 'k'.repeat(leaseWatchdogLimits.maxKeyLength + 1) })) as Error).message).toMatch(/key/)
    expect((parseSpawnerRequest(JSON.stringify({ ...guard, processes: [{ pid: 0, startTicks: 5, group: true }] })) as Error).message).toMatch(/processes/)
    const tooMany = Array.from({ length: leaseWatchdogLimits.maxProcessesPerTarget + 1 }, (_, index) => ({ pid: index + 1, startTicks: 1, group: false }))
    expect((parseSpawnerRequest(JSON.stringify({ ...guard, processes: tooMany })) as Error).message).toMatch(/processes/)
    expect(parseSpawnerRequest(JSON.stringify({ id: 4, type: 'unguard', key: 'job-1' }))).toEqual({ id: 4, type: 'unguard', key: 'job-1' })
    expect((parseSpawnerRequest(JSON.stringify({ id: 4, type: 'forget' })) as Error).message).toMatch(/unknown request type/)
    expect(parseSpawnerAnswer('{"id":0,"type":"lease-lapsed","deadlineMs":null,"killed":["a"]}')).toEqual({ id: 0, type: 'lease-lapsed', deadlineMs: null, killed: ['a'] })
    expect(parseSpawnerAnswer('{"id":0,"type":"lease-lapsed","deadlineMs":5,"killed":[1]}')).toBeInstanceOf(Error)
  })
})
