// Whether a real-runtime test runs: when everything it needs is on this machine, or always with
// FABRIC_REQUIRE_RUNTIMES=1 (CI that has the runtimes: a missing one then fails the test instead
// of skipping it quietly), unless what is missing is a limit of this boot no install can lift.
import { criuProbeFailedOnThisBoot, dockerSocketPath, probeCriu, probeDockerEngine } from '../../runtime/index.ts'
import { loadIroh } from '../../snapshots/iroh-transport.ts'

export const runtimesRequired = process.env.FABRIC_REQUIRE_RUNTIMES === '1'

export interface RuntimeRequirement {
  /** Run the test (all available, or required). */
  run: boolean
  /** For the test's title: ' [skipped: no X: why]' for each missing X (empty when all are there or required). */
  note: string
}

/** Whether this machine has a runtime, and why not when it has not. */
export type Availability = boolean | { available: true } | { available: false; reason: string; platformLimit?: boolean }

/**
 * `available` maps what a test needs (as its skip note names it) to whether this machine has it.
 * A skip is said loudly, with the reason, on stderr as well as in the test's title.
 */
export function runtimeRequirement(available: Record<string, Availability>): RuntimeRequirement {
  const missing = Object.entries(available).flatMap(([name, present]) => {
    if (present === true || (typeof present === 'object' && present.available)) return []
    return [typeof present === 'object' && !present.available ? `no ${name}: ${present.reason}` : `no ${name}`]
  })
  if (missing.length === 0) return { run: true, note: '' }
  const platformOnly = Object.values(available).every((present) => present === true || (typeof present === 'object' && (present.available || present.platformLimit === true)))
  if (runtimesRequired && !platformOnly) {
    console.error(`REQUIRED but unavailable (${missing.join('; ')}): the tests run and will fail`)
    return { run: true, note: '' }
  }
  console.warn(`\n******** SKIPPING (${missing.join('; ')}) ********\n`)
  return { run: false, note: missing.map((entry) => ` [skipped: ${entry}]`).join('') }
}

/**
 * CRIU that can checkpoint here: `criu check` passed and this boot's dump/restore probe too. A failed
 * probe recorded for this boot is a platform limit: skipped loudly even where runtimes are required.
 */
export async function criuAvailable(): Promise<Availability> {
  const criu = await probeCriu()
  if (criu.available) return criu
  return { available: false, reason: criu.reason, platformLimit: criuProbeFailedOnThisBoot(criu) }
}

export async function dockerAvailable(): Promise<boolean> {
  const socket = dockerSocketPath()
  return (await probeDockerEngine(socket)).available
}

/** The iroh native module loads on this platform. */
export function irohAvailable(): boolean {
  try {
    loadIroh()
    return true
  } catch {
    return false
  }
}
