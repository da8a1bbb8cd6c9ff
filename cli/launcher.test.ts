// ./fabric, the launcher the README calls: it runs the CLI with the project's Node from any working
// directory (through a symlink too), printing nothing but the CLI's own output; without the
// project's node_modules it says to run `npm ci`.
import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { repositoryRoot } from '../node/testing/daemon-process.ts'

const run = promisify(execFile)
const launcher = join(repositoryRoot, 'fabric')
const scratch = mkdtemp(join(tmpdir(), 'fabric-launcher-'))
afterAll(async () => rm(await scratch, { recursive: true, force: true }))

describe('the ./fabric launcher', () => {
  it('runs the CLI from another directory and through a symlink, with nothing on stderr', async () => {
    const link = join(await scratch, 'fabric')
    await symlink(launcher, link)
    for (const command of [launcher, link]) {
      const { stdout, stderr } = await run(command, ['--help'], { cwd: await scratch })
      expect(stdout).toContain('Usage: fabric [options] [command]')
      expect(stderr).toBe('')
    }
  })

  it('names `npm ci` when the project has no node_modules', async () => {
    const bare = join(await scratch, 'bare')
    await mkdir(bare)
    await copyFile(launcher, join(bare, 'fabric'))
    const failure = await run('bash', [join(bare, 'fabric'), '--help']).then(() => null, (error: { code: number; stderr: string }) => error)
    expect(failure?.code).toBe(1)
    expect(failure?.stderr).toContain('run `npm ci`')
  })
})
