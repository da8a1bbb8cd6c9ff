// Whether tests that need Docker or CRIU may skip. They skip only where the platform cannot have
// them (scripts/install-runtime-deps.sh said so), and say so loudly. scripts/test.sh sets
// FABRIC_REQUIRE_RUNTIMES=1 once the install script made them ready: then a missing piece fails
// the tests with its reason instead of skipping them quietly, unless this boot's CRIU probe failed.
import { criuProbeFailedOnThisBoot, type CriuSupport } from '../criu.ts'

export interface RequirementGate {
  skip: boolean
  /** Appended to the suite's name: why it was skipped, or nothing. */
  note: string
  /** Why the runtime is missing, when it is (tests that run anyway fail with this). */
  missing: string[]
}

export const runtimesRequired = (): boolean => process.env.FABRIC_REQUIRE_RUNTIMES === '1'

/**
 * A reason this boot cannot have a runtime whatever is installed (CRIU's recorded dump/restore probe
 * hung or failed): skipped loudly even where the runtimes are required, since installing cannot fix it.
 */
export interface PlatformLimit {
  platformLimit: string
}

/** Why CRIU cannot checkpoint here: nothing when it can; a platform limit when this boot's probe failed. */
export function criuMissing(criu: CriuSupport): string | PlatformLimit | undefined {
  if (criu.available) return undefined
  return criuProbeFailedOnThisBoot(criu) ? { platformLimit: criu.reason } : criu.reason
}

export function requirementGate(what: string, reasons: readonly (string | PlatformLimit | undefined)[]): RequirementGate {
  const given = reasons.filter((reason): reason is string | PlatformLimit => reason !== undefined)
  const missing = given.map((reason) => (typeof reason === 'string' ? reason : reason.platformLimit))
  if (missing.length === 0) return { skip: false, note: '', missing }
  const platformOnly = given.every((reason) => typeof reason !== 'string')
  if (runtimesRequired() && !platformOnly) {
    console.error(`${what}: REQUIRED but unavailable (${missing.join('; ')}): the tests run and will fail`)
    return { skip: false, note: '', missing }
  }
  console.warn(`\n******** SKIPPING ${what}: ${missing.join('; ')} ********\n`)
  return { skip: true, note: ` [SKIPPED: ${missing.join('; ')}]`, missing }
}
