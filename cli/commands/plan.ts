// `fabric plan SPEC`: a dry run of one auction for a job spec, placing nothing (like `nomad job
// plan`). By default on the live mesh: the asked daemon builds offers from its cluster document's
// registered nodes (free resources as the document accounts them, nodes it hears on the capacity
// topic). With --fleet FILE, against a fleet file instead (simulated offers, no daemon needed).
// Either way it prints the explain table: every node considered, who was excluded and why, scores,
// the choice and the price paid.
import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import type { JobSpec } from '../../placement/index.ts'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { shortId } from '../table.ts'
import { UserError } from '../user-error.ts'

const bundledFleetPath = new URL('../../examples/fleet.yaml', import.meta.url)

function readText(path: string | URL, what: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new UserError(`cannot read ${what} ${String(path)}: ${(error as Error).message}`)
  }
}

interface PlanFlags extends ConnectFlags {
  fleet?: string
  json?: boolean
}

export function registerPlan(program: Command): void {
  addConnectOptions(
    program
      .command('plan')
      .description('Dry-run the placement auction for a job spec and explain the choice (places nothing): on the live mesh, or with --fleet against a fleet file')
      .argument('<spec>', 'job spec file (YAML or JSON)')
      .option('--fleet <file>', 'plan against this fleet file instead of the live mesh (examples/fleet.yaml is bundled)')
      .option('--json', 'print the explain record as JSON'),
  ).action(async (specPath: string, flags: PlanFlags) => {
    const specText = readText(specPath, 'job spec')
    const { parseJobSpec } = await import('../../placement/index.ts')
    const parsedSpec = parseJobSpec(specText, specPath)
    if (!parsedSpec.ok) {
      throw new UserError(`invalid job spec ${specPath}:\n${parsedSpec.errors.map((error) => `  ${error.path}: ${error.message}`).join('\n')}`, 'fix the fields above; nothing was placed')
    }
    if (flags.fleet !== undefined) return planOnFleet(parsedSpec.spec, flags.fleet, flags.json === true)
    const { clientWireLimits } = await import('../../node/client-wire.ts')
    if (Buffer.byteLength(specText) > clientWireLimits.maxSpecTextBytes) throw new UserError(`${specPath} is larger than ${clientWireLimits.maxSpecTextBytes} bytes`)
    const result = await askDaemon(flags, { kind: 'plan', spec: specText })
    if (flags.json === true) return console.log(JSON.stringify(result, null, 2))
    const { renderExplanationView } = await import('../explanation.ts')
    console.log(renderExplanationView(result.explanation))
    const leftOut = result.leftOut.map((entry) => `${shortId(entry.nodeId)} (${entry.reason})`)
    console.log(`(dry run on the live mesh: ${result.considered} node(s) offered${leftOut.length > 0 ? `; left out: ${leftOut.join(', ')}` : ''}; nothing was placed)`)
  })
}

async function planOnFleet(spec: JobSpec, fleetFlag: string, json: boolean): Promise<void> {
  const { asJobId, explainJob, parseFleet, placeBatch, renderExplanation } = await import('../../placement/index.ts')
  const fleetPath = fleetFlag === 'examples/fleet.yaml' ? bundledFleetPath : fleetFlag
  const fleet = parseFleet(readText(fleetPath, 'fleet'), String(fleetPath))
  if (!fleet.ok) throw new UserError(`invalid fleet ${String(fleetPath)}:\n${fleet.errors.map((error) => `  ${error.path}: ${error.message}`).join('\n')}`)
  const jobId = asJobId(`plan-${spec.name}`)
  const result = placeBatch([{ jobId, spec }], fleet.offers, { nowMs: 0, roundIdPrefix: 'plan' })
  const round = result.rounds[0]
  const record = round ? explainJob(round, jobId) : undefined
  if (!record) throw new Error('assertion: the plan round did not consider the job')
  console.log(json ? JSON.stringify(record, null, 2) : renderExplanation(record))
}
