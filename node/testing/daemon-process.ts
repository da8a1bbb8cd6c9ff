// Test harness for integration tests with real daemons: each Daemon (node/daemon-process.ts) is
// `fabric node start` in its own process; runCli runs one `fabric` command as a process.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { cliEntry, repositoryRoot } from '../daemon-process.ts'

export { Daemon, agreedLeader, cliEntry, repositoryRoot, type ReadyLine, type StatusLine } from '../daemon-process.ts'
export const nodeBinary = join(repositoryRoot, 'node_modules/.bin/node')

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Runs `fabric ARGS` as a process and collects its output; kills it after `timeoutMs`. */
export function runCli(args: readonly string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(nodeBinary, [cliEntry, ...args], { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`fabric ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolvePromise({ code, stdout, stderr })
    })
  })
}
