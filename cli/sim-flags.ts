// Turns the simulator flags shared by `fabric sim` and `fabric bench sim` into SimOptions,
// each bad value a UserError naming its flag.
import { defaultSimOptions, parseDurationMs, parseFaults, type SimOptions } from '../sim/index.ts'
import { integer, parseLatencyRange } from './parse.ts'
import { UserError } from './user-error.ts'

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
  const nodes = integer('--nodes', text('nodes'))
  if (![1, 3, 5, 7].includes(voters)) throw new UserError(`--voters must be 3, 5 or 7 (or 1 for a single-node test), got ${voters}`)
  if (voters > nodes) throw new UserError(`--voters (${voters}) cannot exceed --nodes (${nodes})`)
  const broken = flags.broken === undefined ? 'none' : text('broken')
  if (broken !== 'none' && broken !== 'no-quorum') throw new UserError(`--broken must be none or no-quorum, got ${broken}`)
  const rate = Number(text('rate'))
  if (!(rate >= 0)) throw new UserError(`--rate must be a number of jobs per second, got ${text('rate')}`)
  const electionTimeoutMs = integer('--election-timeout', text('electionTimeout'))
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
    broken,
  }
}
