// Turns the simulator flags shared by `fabric sim` and `fabric bench sim` into SimOptions,
// each bad value a UserError naming its flag.
import { readFileSync } from 'node:fs'
import { parseFleet, parseWorkload, type NodeOffer, type SpecError, type Workload } from '../placement/index.ts'
import { defaultSimOptions, parseDurationMs, parseFaults, type SimOptions } from '../sim/index.ts'
import { integer, parseLatencyRange } from './parse.ts'
import { UserError } from './user-error.ts'
import { brokenVariants, maxElectionTimeoutMs, type BrokenVariant } from '../consensus/index.ts'

export function simOptionsFromFlags(flags: Record<string, string | boolean | undefined>): SimOptions {
  const text = (name: string): string => String(flags[name])
  let faults
  let durationMs
  try {
    faults = parseFaults(text('faults'))
    durationMs = parseDurationMs(text('duration'))
  } catch (error) {
    throw new UserError((error as Error).message)
  }
  const [linkLatencyMinMs, linkLatencyMaxMs] = parseLatencyRange(text('latency'))
  const voters = integer('--voters', text('voters'))
  const fleet = flags.fleet === undefined ? null : readFleet(text('fleet'))
  const workload = flags.workload === undefined ? null : readWorkload(text('workload'))
  const nodes = fleet?.length ?? integer('--nodes', text('nodes'))
  if (![1, 3, 5, 7].includes(voters)) throw new UserError(`--voters must be 3, 5 or 7 (or 1 for a single-node test), got ${voters}`)
  if (voters > nodes) throw new UserError(`--voters (${voters}) cannot exceed --nodes (${nodes})`)
  const broken = flags.broken === undefined ? 'none' : text('broken')
  if (!(brokenVariants as readonly string[]).includes(broken)) throw new UserError(`--broken must be one of ${brokenVariants.join(', ')}, got ${broken}`)
  const rate = Number(text('rate'))
  if (!(rate >= 0)) throw new UserError(`--rate must be a number of jobs per second, got ${text('rate')}`)
  const electionTimeoutMs = integer('--election-timeout', text('electionTimeout'))
  if (electionTimeoutMs < 10 || electionTimeoutMs > maxElectionTimeoutMs) throw new UserError(`--election-timeout must be between 10 and ${maxElectionTimeoutMs} ms, got ${electionTimeoutMs}`)
  return {
    ...defaultSimOptions,
    nodes,
    voters,
    faults,
    durationMs,
    ratePerSecond: rate,
    electionTimeoutMs,
    heartbeatIntervalMs: Math.max(1, Math.round(electionTimeoutMs / 5)),
    linkLatencyMinMs,
    linkLatencyMaxMs,
    broken: broken as BrokenVariant,
    // A planted-bug run asks whether the bug is caught: each seed ends at its first violation unless --full.
    stopAtFirstViolation: broken !== 'none' && flags.full !== true,
    fleet,
    workload,
  }
}

function readText(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new UserError(`${flag}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
}

const describeErrors = (errors: readonly SpecError[]): string => errors.slice(0, 10).map((error) => `  ${error.path}: ${error.message}`).join('\n')

function readFleet(path: string): NodeOffer[] {
  const result = parseFleet(readText('--fleet', path), path)
  if (!result.ok) throw new UserError(`--fleet ${path} is not a valid fleet:\n${describeErrors(result.errors)}`)
  return result.offers
}

function readWorkload(path: string): Workload {
  const result = parseWorkload(readText('--workload', path), path)
  if (!result.ok) throw new UserError(`--workload ${path} is not a valid workload:\n${describeErrors(result.errors)}`)
  return result.workload
}
