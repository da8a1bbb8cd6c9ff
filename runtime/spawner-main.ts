// The spawner process (see spawner.ts): a small Node process that forks jobs' launchers for the
// daemon, so the daemon itself never forks, and runs the lease watchdog (lease-watchdog.ts) outside
// the daemon's event loop. Requests come as JSON lines on stdin, answers go as JSON lines on stdout.
// When stdin closes or SIGTERM comes (the daemon is gone or done; SIGTERM is its parent-death
// signal) it exits, at once unless a lease is armed with targets guarded: then it stays until the
// deadline, kills them, and exits. Its launchers carry their own parent-death signal, so they go with it.
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { LeaseWatchdog, startTicksOf } from './lease-watchdog.ts'
import { parseSpawnerRequest, type LaunchRequest, type SpawnerAnswer } from './spawner-wire.ts'

// Answers to a daemon that died fail with EPIPE: nobody is listening, and the watchdog must go on.
process.stdout.on('error', () => {})

function answer(message: SpawnerAnswer): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

let daemonGone = false
const watchdog = new LeaseWatchdog({
  onLapse(lapse) {
    answer({ id: 0, type: 'lease-lapsed', deadlineMs: lapse.deadlineMs, killed: lapse.killed })
    if (daemonGone) process.exit(0)
  },
})

function handle(line: string): void {
  const request = parseSpawnerRequest(line)
  if (request instanceof Error) {
    // The daemon is the only writer: a bad line is a bug there, said on stderr (the daemon's log).
    process.stderr.write(`fabric-spawner: refused a request: ${request.message}\n`)
    return
  }
  switch (request.type) {
    case 'lease':
      return watchdog.setDeadline(request.deadlineMs)
    case 'guard': {
      const guarded = watchdog.guard(request.key, request.processes)
      if (!guarded.ok) answer({ id: request.id, type: 'error', message: guarded.reason })
      return
    }
    case 'unguard':
      return watchdog.unguard(request.key)
    case 'launch':
      return launch(request.id, request)
  }
}

const noLease = 'the node holds no lease (it lapsed or was withdrawn): nothing may start'

function launch(id: number, request: LaunchRequest): void {
  if (request.guardKey !== undefined && watchdog.lapsed()) return answer({ id, type: 'error', message: noLease })
  let stdout: number | undefined
  let stderr: number | undefined
  try {
    // Appending matters for checkpoints (see process-runtime.ts).
    stdout = openSync(request.stdoutPath, 'a')
    stderr = openSync(request.stderrPath, 'a')
    const child = spawn(request.file, request.args, { cwd: request.cwd, env: request.env, detached: true, stdio: ['ignore', stdout, stderr], argv0: request.argv0 })
    child.once('spawn', () => {
      const pid = child.pid!
      // Guarded from its first moment (its group: it leads one, detached), before the daemon hears of it.
      const refusal = request.guardKey === undefined ? undefined : guardLaunched(request.guardKey, pid)
      if (refusal === undefined) return answer({ id, type: 'spawned', pid })
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {
        // Gone already.
      }
      answer({ id, type: 'error', message: refusal })
    })
    child.once('error', (error) => answer({ id, type: 'error', message: error.message }))
    child.once('exit', (code, signal) => answer({ id, type: 'exit', code, signal }))
  } catch (error) {
    answer({ id, type: 'error', message: (error as Error).message })
  } finally {
    if (stdout !== undefined) closeSync(stdout)
    if (stderr !== undefined) closeSync(stderr)
  }
}

/** Guards a launched group; the reason when it must not run (no lease, no room). */
function guardLaunched(key: string, pid: number): string | undefined {
  if (watchdog.lapsed()) return noLease
  const startTicks = startTicksOf(pid)
  if (startTicks === undefined) return undefined // ended already: its exit says so
  const guarded = watchdog.guard(key, [{ pid, startTicks, group: true }])
  return guarded.ok ? undefined : `cannot guard it: ${guarded.reason}`
}

/** The daemon is gone (stdin closed, or its parent-death signal): stay only while the lease guards something. */
function onDaemonGone(): void {
  if (daemonGone) return
  daemonGone = true
  if (!watchdog.armed || watchdog.guardedCount === 0) process.exit(0)
  // The watchdog's timer keeps this process until the deadline; its lapse exits.
}

process.on('SIGTERM', onDaemonGone)
const lines = createInterface({ input: process.stdin })
lines.on('line', handle)
lines.on('close', onDaemonGone)
answer({ id: 0, type: 'ready', pid: process.pid })
