// The daemon's process settings for a small idle footprint. `fabric node start` re-executes itself
// in place (process.execve: same PID, same stdio, nothing else loaded yet) with them when they are
// missing, so a daemon started by hand, by systemd or by a test gets the same process. Measured
// (bench/RESULTS.md, mesh): a lone idle daemon 179 -> 139 MiB resident with the first three, and
// in a 5-node mesh 153 -> 138 MiB idle from --optimize-for-size on top of them.
//  * --max-semi-space-size=2: V8's young generation otherwise grows to tens of MiB and stays.
//  * --v8-pool-size=1: one V8 helper thread (each thread's malloc arena keeps a few MiB).
//  * MALLOC_ARENA_MAX=2: glibc otherwise gives each thread touching malloc an arena of its own.
//  * --optimize-for-size: V8 favours smaller code and heap over speed.
// Costs: more frequent (smaller) young-generation collections, one GC helper thread, and code
// optimized less eagerly; the daemon is event-loop bound and waits on the network most of the time:
// its CPU per job under load stayed within the runs' noise (bench mesh, 200 jobs: 48-60 ms against
// 48-49 ms).

export const daemonNodeFlags = ['--max-semi-space-size=2', '--v8-pool-size=1', '--optimize-for-size'] as const
export const daemonEnvironment = { MALLOC_ARENA_MAX: '2' } as const
/** Set in the re-executed process: never re-execute twice; `0` turns the tuning off. */
export const tunedMarker = 'FABRIC_DAEMON_TUNED'

export function tuneDaemonProcess(argv: readonly string[]): void {
  if (argv[2] !== 'node' || argv[3] !== 'start') return
  if (process.env[tunedMarker] !== undefined) return
  if (process.platform !== 'linux' || typeof process.execve !== 'function') return
  const flags = daemonNodeFlags.filter((flag) => !process.execArgv.some((given) => given.split('=')[0] === flag.split('=')[0]))
  const env: Record<string, string> = { ...daemonEnvironment, ...(process.env as Record<string, string>), [tunedMarker]: '1' }
  try {
    // Does not return: the process image is replaced (argv[1] is this CLI's entry, argv[2..] the command).
    process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, ...argv.slice(1)], env)
  } catch (error) {
    // The daemon runs as it is, untuned: say so (stderr carries the daemon's log lines).
    process.stderr.write(`${JSON.stringify({ level: 'warn', component: 'cli', event: 'daemon-tuning-skipped', reason: (error as Error).message })}\n`)
  }
}
