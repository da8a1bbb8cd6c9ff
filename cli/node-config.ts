// `fabric node start --config FILE`: the daemon's flags as a YAML file. Every flag has a key of the
// same name (`--az-id` is `az-id:`); a flag given on the command line wins over the file. The file
// is checked whole before anything starts, and each error names its key path.
import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { parse } from 'yaml'
import { z } from 'zod'
import { UserError } from './user-error.ts'

/** A config file is a few KiB; anything near this is not one. */
const maxConfigBytes = 256 * 1024

const text = z.string().min(1).max(4_096)
const count = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]).transform(String)
const list = z.union([text, z.array(text).max(256)]).transform((value) => (Array.isArray(value) ? value : [value]))

/** Keys as the flags are named; the value each becomes is what commander would have parsed from the flag. */
export const nodeConfigSchema = z.strictObject({
  data: text.optional(),
  listen: list.optional(),
  bootstrap: list.optional(),
  voters: list.optional(),
  admin: text.optional(),
  mesh: text.optional(),
  invite: text.optional(),
  'election-timeout': count.optional(),
  'request-fanout': z.enum(['all-voters', 'majority']).optional(),
  'cpu-millis': count.optional(),
  'memory-mib': count.optional(),
  'disk-mib': count.optional(),
  gpus: count.optional(),
  provider: text.optional(),
  region: text.optional(),
  'az-id': text.optional(),
  country: text.optional(),
  spot: z.boolean().optional(),
  /** A map here (`labels: {tier: gold}`); `--label tier=gold` on the command line. */
  labels: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
  'placement-group': text.optional(),
  efa: z.boolean().optional(),
  'gpu-model': text.optional(),
  'price-per-hour': z.union([z.number().nonnegative(), text]).transform(String).optional(),
  'log-level': z.enum(['debug', 'info', 'warn', 'error']).optional(),
  'sync-writes': z.boolean().optional(),
  'snapshot-transport': text.optional(),
})

export type NodeConfig = z.infer<typeof nodeConfigSchema>

/** Reads and checks a config file; a UserError names the file and every bad key path. */
export function readNodeConfig(path: string): NodeConfig {
  let source: string
  try {
    source = readFileSync(path, 'utf8')
  } catch (error) {
    throw new UserError(`--config: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  if (source.length > maxConfigBytes) throw new UserError(`--config: ${path} has ${source.length} bytes, more than a config file's ${maxConfigBytes}`)
  let value: unknown
  try {
    value = parse(source, { maxAliasCount: 16 }) ?? {}
  } catch (error) {
    throw new UserError(`--config: ${path} is not valid YAML: ${(error as Error).message.split('\n')[0]}`)
  }
  const parsed = nodeConfigSchema.safeParse(value)
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 10).map((issue) => `  ${issue.path.length > 0 ? issue.path.join('.') : '(top level)'}: ${issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : issue.message}`)
    throw new UserError(`--config: ${path} is not a valid node config:\n${problems.join('\n')}`, 'every key is a `fabric node start` flag without its dashes (see deploy/shuttle.yaml)')
  }
  return parsed.data
}

/** The commander option each key sets (its attribute name), where it is not simply the camel-cased key. */
const optionNameOf = (key: string): string => (key === 'labels' ? 'label' : key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase()))

/** Sets every option the file gives and the command line did not. */
export function applyNodeConfig(command: Command, config: NodeConfig): void {
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue
    const name = optionNameOf(key)
    if (command.getOptionValueSource(name) === 'cli') continue
    const converted = key === 'labels' ? Object.entries(value as Record<string, string>).map(([label, labelValue]) => `${label}=${labelValue}`) : value
    command.setOptionValueWithSource(name, converted, 'config')
  }
}
