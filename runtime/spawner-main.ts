// The spawner process (see spawner.ts): a small Node process that forks jobs' launchers for the
// daemon, so the daemon itself never forks. Requests come as JSON lines on stdin, answers go as JSON
// lines on stdout. It exits when stdin closes (the daemon is gone or done); its launchers carry
// their own parent-death signal, so they go with it.
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseSpawnerRequest, type SpawnerAnswer } from './spawner-wire.ts'

function answer(message: SpawnerAnswer): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

function handle(line: string): void {
  const request = parseSpawnerRequest(line)
  if (request instanceof Error) {
    // The daemon is the only writer: a bad line is a bug there, said on stderr (the daemon's log).
    process.stderr.write(`fabric-spawner: refused a request: ${request.message}\n`)
    return
  }
  const { id } = request
  let stdout: number | undefined
  let stderr: number | undefined
  try {
    // Appending matters for checkpoints (see process-runtime.ts).
    stdout = openSync(request.stdoutPath, 'a')
    stderr = openSync(request.stderrPath, 'a')
    const child = spawn(request.file, request.args, { cwd: request.cwd, env: request.env, detached: true, stdio: ['ignore', stdout, stderr], argv0: request.argv0 })
    child.once('spawn', () => answer({ id, type: 'spawned', pid: child.pid! }))
    child.once('error', (error) => answer({ id, type: 'error', message: error.message }))
    child.once('exit', (code, signal) => answer({ id, type: 'exit', code, signal }))
  } catch (error) {
    answer({ id, type: 'error', message: (error as Error).message })
  } finally {
    if (stdout !== undefined) closeSync(stdout)
    if (stderr !== undefined) closeSync(stderr)
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', handle)
lines.on('close', () => process.exit(0))
answer({ id: 0, type: 'ready', pid: process.pid })
