// Flag parsing helpers shared by commands: each failure is a UserError naming the flag.
import { UserError } from './user-error.ts'

export function integer(flag: string, value: unknown): number {
  const number = Number(value)
  if (!Number.isInteger(number) || number < 0) throw new UserError(`${flag} must be a non-negative whole number, got "${String(value)}"`)
  return number
}

export function positiveInteger(flag: string, value: unknown): number {
  const number = integer(flag, value)
  if (number < 1) throw new UserError(`${flag} must be at least 1, got "${String(value)}"`)
  return number
}

export function parseLatencyRange(text: string): [number, number] {
  const match = /^(\d+)-(\d+)$/.exec(text.trim())
  if (match === null) throw new UserError(`--latency must look like 20-50 (milliseconds), got "${text}"`)
  const min = Number(match[1])
  const max = Number(match[2])
  if (min > max) throw new UserError(`--latency minimum ${min} exceeds maximum ${max}`)
  return [min, max]
}
