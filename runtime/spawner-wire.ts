// The messages between the process runtime and its spawner process (JSON lines over the spawner's
// stdin and stdout). Both ends are ours; the checks keep a bug on one side from becoming a crash on
// the other. Hand-written, not zod: the spawner stays small, which is the point of it (spawner.ts).
import { leaseWatchdogLimits, type GuardedProcess } from './lease-watchdog.ts'

/** A process to fork: its program, arguments, folder, environment, and the files its output appends to. */
export interface LaunchRequest {
  file: string
  args: string[]
  argv0: string
  cwd: string
  env: Record<string, string>
  stdoutPath: string
  stderrPath: string
  /** Guard the launched process's group under this key from the moment it exists (lease-watchdog.ts); refused when the lease lapsed. */
  guardKey?: string
}

export type SpawnerRequest =
  | (LaunchRequest & { id: number; type: 'launch' })
  /** The node's lease deadline (CLOCK_MONOTONIC ms), or null: no lease. */
  | { id: number; type: 'lease'; deadlineMs: number | null }
  /** Guard a job's processes under `key` (replacing what it had). */
  | { id: number; type: 'guard'; key: string; processes: GuardedProcess[] }
  | { id: number; type: 'unguard'; key: string }

export type SpawnerAnswer =
  | { id: 0; type: 'ready'; pid: number }
  | { id: number; type: 'spawned'; pid: number }
  | { id: number; type: 'error'; message: string }
  | { id: number; type: 'exit'; code: number | null; signal: NodeJS.Signals | null }
  /** The lease lapsed (or was withdrawn): the targets under these keys were SIGKILLed. */
  | { id: 0; type: 'lease-lapsed'; deadlineMs: number | null; killed: string[] }

const isString = (value: unknown): value is string => typeof value === 'string'
const isId = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0
const isPid = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0
const isKey = (value: unknown): value is string => isString(value) && value.length > 0 && value.length <= leaseWatchdogLimits.maxKeyLength
const isDeadline = (value: unknown): value is number | null => value === null || (typeof value === 'number' && Number.isFinite(value))
const isGuardedProcess = (value: unknown): value is GuardedProcess => {
  const candidate = value as Record<string, unknown> | null
  return typeof candidate === 'object' && candidate !== null && isPid(candidate.pid) && isId(candidate.startTicks) && typeof candidate.group === 'boolean'
}

function parseObject(line: string): Record<string, unknown> | Error {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (error) {
    return new Error(`not JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return new Error('not an object')
  return value as Record<string, unknown>
}

/** The request on one line, or an Error naming what is wrong with it. */
export function parseSpawnerRequest(line: string): SpawnerRequest | Error {
  const value = parseObject(line)
  if (value instanceof Error) return value
  if (!isPid(value.id)) return new Error('id: expected a positive integer')
  switch (value.type) {
    case 'launch': {
      for (const field of ['file', 'argv0', 'cwd', 'stdoutPath', 'stderrPath'] as const) if (!isString(value[field])) return new Error(`${field}: expected a string`)
      if (!Array.isArray(value.args) || !value.args.every(isString)) return new Error('args: expected strings')
      const env = value.env as Record<string, unknown> | null
      if (typeof env !== 'object' || env === null || !Object.values(env).every(isString)) return new Error('env: expected an object of strings')
      if (value.guardKey !== undefined && !isKey(value.guardKey)) return new Error(`guardKey: expected 1 to ${leaseWatchdogLimits.maxKeyLength} characters`)
      break
    }
    case 'lease':
      if (!isDeadline(value.deadlineMs)) return new Error('deadlineMs: expected a finite number or null')
      break
    case 'guard':
      if (!isKey(value.key)) return new Error(`key: expected 1 to ${leaseWatchdogLimits.maxKeyLength} characters`)
      if (!Array.isArray(value.processes) || value.processes.length > leaseWatchdogLimits.maxProcessesPerTarget || !value.processes.every(isGuardedProcess)) {
        return new Error(`processes: expected at most ${leaseWatchdogLimits.maxProcessesPerTarget} of {pid, startTicks, group}`)
      }
      break
    case 'unguard':
      if (!isKey(value.key)) return new Error(`key: expected 1 to ${leaseWatchdogLimits.maxKeyLength} characters`)
      break
    default:
      return new Error(`unknown request type ${String(value.type)}`)
  }
  return value as unknown as SpawnerRequest
}

/** The answer on one line, or an Error naming what is wrong with it. */
export function parseSpawnerAnswer(line: string): SpawnerAnswer | Error {
  const value = parseObject(line)
  if (value instanceof Error) return value
  if (!isId(value.id)) return new Error('expected an object with an id')
  switch (value.type) {
    case 'ready':
    case 'spawned':
      return isPid(value.pid) ? (value as unknown as SpawnerAnswer) : new Error(`${value.type}: pid expected`)
    case 'error':
      return isString(value.message) ? (value as unknown as SpawnerAnswer) : new Error('error: message expected')
    case 'exit':
      return (value.code === null || Number.isSafeInteger(value.code)) && (value.signal === null || isString(value.signal))
        ? (value as unknown as SpawnerAnswer)
        : new Error('exit: code and signal expected')
    case 'lease-lapsed':
      return isDeadline(value.deadlineMs) && Array.isArray(value.killed) && value.killed.length <= leaseWatchdogLimits.maxGuardedTargets && value.killed.every(isKey)
        ? (value as unknown as SpawnerAnswer)
        : new Error('lease-lapsed: deadlineMs and the killed keys expected')
    default:
      return new Error(`unknown answer type ${String(value.type)}`)
  }
}
