// `fabric submit SPEC` or `fabric submit --cmd "..."`: sends a job to a daemon and prints its id
// once the daemon says it is durable on a majority of voters. The spec is checked here first (the
// daemon checks it again) so mistakes are reported with their field paths at once.
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import type { Command } from 'commander'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { splitShellWords } from '../shell-words.ts'
import { UserError } from '../user-error.ts'

interface SubmitFlags extends ConnectFlags {
  cmd?: string
  name?: string
  cpu?: string
  memory?: string
  json?: boolean
}

export function registerSubmit(program: Command): void {
  addConnectOptions(
    program
      .command('submit')
      .description('Submit a job (a spec file in YAML or JSON, or a plain command with --cmd) and print its id once the mesh has it durably')
      .argument('[spec]', 'job spec file (YAML or JSON; - reads standard input)')
      .option('--cmd <command>', 'run this command line (split like a shell would, without expansions) instead of a spec')
      .option('--name <name>', 'job name with --cmd (lowercase letters, digits, dashes; default: from the command)')
      .option('--cpu <cpu>', 'CPU with --cmd: cores (0.5) or millicores (500m)', '500m')
      .option('--memory <size>', 'memory with --cmd (256Mi, 1Gi, or MiB)', '256Mi')
      .option('--json', 'print {"jobId": ...}'),
  ).action(async (specPath: string | undefined, flags: SubmitFlags, command: Command) => {
    const [{ clientWireLimits }, { parseJobSpec }] = await Promise.all([import('../../node/client-wire.ts'), import('../../placement/index.ts')])
    const specText = await specFrom(specPath, flags, command, clientWireLimits.maxSpecTextBytes)
    const parsed = parseJobSpec(specText, specPath ?? '--cmd')
    if (!parsed.ok) throw new UserError(`the job spec is not valid:\n${parsed.errors.map((error) => `  ${error.path}: ${error.message}`).join('\n')}`, 'examples/ holds valid specs')
    const result = await askDaemon(flags, { kind: 'submit', spec: specText })
    console.log(flags.json === true ? JSON.stringify(result) : result.jobId)
  })
}

async function specFrom(specPath: string | undefined, flags: SubmitFlags, command: Command, maxSpecTextBytes: number): Promise<string> {
  if (specPath !== undefined && flags.cmd !== undefined) throw new UserError('give a spec file or --cmd, not both')
  if (flags.cmd !== undefined) {
    const argv = splitShellWords(flags.cmd)
    if (argv.length === 0) throw new UserError('--cmd is empty')
    const name = flags.name ?? nameFrom(argv[0]!)
    return JSON.stringify({ name, command: argv, resources: { cpu: flags.cpu, memory: flags.memory } })
  }
  if (specPath === undefined) throw new UserError('nothing to submit', 'give a spec file (fabric submit job.yaml) or a command (fabric submit --cmd "echo hello")')
  for (const flag of ['name', 'cpu', 'memory'] as const) {
    if (command.getOptionValueSource(flag) === 'cli') throw new UserError(`--${flag} goes with --cmd; a spec file sets it itself`)
  }
  let text: string
  try {
    text = specPath === '-' ? await readStandardInput(maxSpecTextBytes) : await readFile(specPath, 'utf8')
  } catch (error) {
    throw new UserError(`cannot read ${specPath}: ${(error as Error).message}`)
  }
  if (Buffer.byteLength(text) > maxSpecTextBytes) throw new UserError(`${specPath} is larger than ${maxSpecTextBytes} bytes`)
  return text
}

/** A job name from a command: its base name, lowercased, other characters made dashes. */
function nameFrom(executable: string): string {
  const name = basename(executable).toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 40).replace(/^-+|-+$/g, '')
  return name === '' ? 'job' : name
}

async function readStandardInput(maxBytes: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length
    if (size > maxBytes) throw new Error(`more than ${maxBytes} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}
