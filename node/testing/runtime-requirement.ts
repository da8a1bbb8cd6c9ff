// Whether a real-runtime test of a daemon mesh runs: the same gate as the runtime tests
// (runtime/testing/requirements.ts): when everything it needs is on this machine, or always with
// FABRIC_REQUIRE_RUNTIMES=1 (a missing one then fails the test instead of skipping it quietly),
// unless what is missing is a limit of this boot no install can lift.
import { dockerSocketPath, probeCriu, probeDockerEngine } from '../../runtime/index.ts'
import { criuMissing, requirementGate, type PlatformLimit } from '../../runtime/testing/requirements.ts'
import { loadIroh } from '../../snapshots/iroh-transport.ts'

export interface RuntimeRequirement {
  /** Run the test (all available, or required). */
  run: boolean
  /** For the test's title: why it was skipped (empty when all are there or required). */
  note: string
}

/** Whether this machine has a runtime: nothing when it has, else why not (a platform limit, or a reason an install could mend). */
export type Missing = string | PlatformLimit | undefined

/** `available` maps what a test needs (as its skip note names it) to what is missing of it (true: present, false: missing, no reason known). A skip is said loudly. */
export function runtimeRequirement(available: Record<string, Missing | boolean>): RuntimeRequirement {
  const reasons = Object.entries(available).map(([name, missing]): Missing => {
    if (missing === true || missing === undefined) return undefined
    if (missing === false) return `no ${name}`
    return typeof missing === 'string' ? `no ${name}: ${missing}` : { platformLimit: `no ${name}: ${missing.platformLimit}` }
  })
  const gate = requirementGate('these mesh tests', reasons)
  return { run: !gate.skip, note: gate.note }
}

/**
 * What CRIU lacks to checkpoint here (`criu check` and this boot's dump/restore probe must pass). A
 * failed probe recorded for this boot is a platform limit: skipped loudly even where runtimes are required.
 */
export async function criuMissingHere(): Promise<Missing> {
  return criuMissing(await probeCriu())
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
