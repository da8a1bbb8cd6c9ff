// Whether a real-runtime test runs: when everything it needs is on this machine, or always with
// FABRIC_REQUIRE_RUNTIMES=1 (CI that has the runtimes: a missing one then fails the test instead
// of skipping it quietly).
import { dockerSocketPath, probeCriu, probeDockerEngine } from '../../runtime/index.ts'
import { loadIroh } from '../../snapshots/iroh-transport.ts'

export const runtimesRequired = process.env.FABRIC_REQUIRE_RUNTIMES === '1'

export interface RuntimeRequirement {
  /** Run the test (all available, or required). */
  run: boolean
  /** For the test's title: ' [skipped: no X]' for each missing X (empty when all are there). */
  note: string
}

/** `available` maps what a test needs (as its skip note names it) to whether this machine has it. */
export function runtimeRequirement(available: Record<string, boolean>): RuntimeRequirement {
  const missing = Object.entries(available).filter(([, present]) => !present).map(([name]) => name)
  return { run: missing.length === 0 || runtimesRequired, note: missing.map((name) => ` [skipped: no ${name}]`).join('') }
}

export async function criuAvailable(): Promise<boolean> {
  return (await probeCriu()).available
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
