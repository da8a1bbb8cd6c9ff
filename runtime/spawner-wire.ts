// The messages between the process runtime and its spawner process (JSON lines over the spawner's
// stdin and stdout). Both ends are ours; the checks keep a bug on one side from becoming a crash on
// the other. Hand-written, not zod: the spawner stays small, which is the point of it (spawner.ts).

/** A process to fork: its program, arguments, folder, environment, and the files its output appends to. */
export interface LaunchRequest {
  file: string
  args: string[]
  argv0: string
  cwd: string
  env: Record<string, string>
  stdoutPath: string
  stderrPath: string
}

export type SpawnerRequest = LaunchRequest & { id: number }

export type SpawnerAnswer =
  | { id: 0; type: 'ready'; pid: number }
  | { id: number; type: 'spawned'; pid: number }
  | { id: number; type: 'error'; message: string }
  | { id: number; type: 'exit'; code: number | null; signal: NodeJS.Signals | null }

const isString = (value: unknown): value is string => typeof value === 'string'
const isId = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0
const isPid = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0

/** The request on one line, or an Error naming what is wrong with it. */
export function parseSpawnerRequest(line: string): SpawnerRequest | Error {
  let value: Record<string, unknown>
  try {
    value = JSON.parse(line) as Record<string, unknown>
  } catch (error) {
    return new Error(`not JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null) return new Error('not an object')
  if (!isPid(value.id)) return new Error('id: expected a positive integer')
  for (const field of ['file', 'argv0', 'cwd', 'stdoutPath', 'stderrPath'] as const) if (!isString(value[field])) return new Error(`${field}: expected a string`)
  if (!Array.isArray(value.args) || !value.args.every(isString)) return new Error('args: expected strings')
  const env = value.env as Record<string, unknown> | null
  if (typeof env !== 'object' || env === null || !Object.values(env).every(isString)) return new Error('env: expected an object of strings')
  return value as unknown as SpawnerRequest
}

/** The answer on one line, or an Error naming what is wrong with it. */
export function parseSpawnerAnswer(line: string): SpawnerAnswer | Error {
  let value: Record<string, unknown>
  try {
    value = JSON.parse(line) as Record<string, unknown>
  } catch (error) {
    return new Error(`not JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || !isId(value.id)) return new Error('expected an object with an id')
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
    default:
      return new Error(`unknown answer type ${String(value.type)}`)
  }
}
