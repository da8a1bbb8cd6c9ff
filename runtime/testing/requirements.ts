// Whether tests that need Docker or CRIU may skip. They skip only where the platform cannot have
// them (scripts/install-runtime-deps.sh said so), and say so loudly. scripts/test.sh sets
// FABRIC_REQUIRE_RUNTIMES=1 once the install script made them ready: then a missing piece fails
// the tests with its reason instead of skipping them quietly.

export interface RequirementGate {
  skip: boolean
  /** Appended to the suite's name: why it was skipped, or nothing. */
  note: string
  /** Why the runtime is missing, when it is (tests that run anyway fail with this). */
  missing: string[]
}

export const runtimesRequired = (): boolean => process.env.FABRIC_REQUIRE_RUNTIMES === '1'

export function requirementGate(what: string, reasons: readonly (string | undefined)[]): RequirementGate {
  const missing = reasons.filter((reason): reason is string => reason !== undefined)
  if (missing.length === 0) return { skip: false, note: '', missing }
  if (runtimesRequired()) {
    console.error(`${what}: REQUIRED but unavailable (${missing.join('; ')}): the tests run and will fail`)
    return { skip: false, note: '', missing }
  }
  console.warn(`\n******** SKIPPING ${what}: ${missing.join('; ')} ********\n`)
  return { skip: true, note: ` [SKIPPED: ${missing.join('; ')}]`, missing }
}
