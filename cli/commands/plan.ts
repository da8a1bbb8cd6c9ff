// `fabric plan SPEC`: a dry run of one auction for a job spec against a fleet file. Prints the
// explain table (every node considered, who was excluded and why, scores) and the choice with
// the price paid, without placing anything (like `nomad job plan`).
import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { asJobId, explainJob, parseFleet, parseJobSpec, placeBatch, renderExplanation } from '../../placement/index.ts'
import { UserError } from '../user-error.ts'

const defaultFleetPath = new URL('../../examples/fleet.yaml', import.meta.url)

function readText(path: string | URL, what: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new UserError(`cannot read ${what} ${String(path)}: ${(error as Error).message}`)
  }
}

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('Dry-run the placement auction for a job spec against a fleet and explain the choice (places nothing)')
    .argument('<spec>', 'job spec file (YAML or JSON)')
    .option('--fleet <file>', 'fleet description (YAML)', 'examples/fleet.yaml')
    .option('--json', 'print the explain record as JSON')
    .action((specPath: string, options: { fleet: string; json?: boolean }) => {
      const parsedSpec = parseJobSpec(readText(specPath, 'job spec'), specPath)
      if (!parsedSpec.ok) {
        throw new UserError(
          `invalid job spec ${specPath}:\n${parsedSpec.errors.map((error) => `  ${error.path}: ${error.message}`).join('\n')}`,
          'fix the fields above; nothing was placed',
        )
      }
      const fleetPath = options.fleet === 'examples/fleet.yaml' ? defaultFleetPath : options.fleet
      const fleet = parseFleet(readText(fleetPath, 'fleet'), String(fleetPath))
      if (!fleet.ok) {
        throw new UserError(`invalid fleet ${String(fleetPath)}:\n${fleet.errors.map((error) => `  ${error.path}: ${error.message}`).join('\n')}`)
      }
      const jobId = asJobId(`plan-${parsedSpec.spec.name}`)
      const result = placeBatch([{ jobId, spec: parsedSpec.spec }], fleet.offers, { nowMs: 0, roundIdPrefix: 'plan' })
      const round = result.rounds[0]
      const record = round ? explainJob(round, jobId) : undefined
      if (!record) throw new Error('assertion: the plan round did not consider the job')
      if (options.json) console.log(JSON.stringify(record, null, 2))
      else console.log(renderExplanation(record))
    })
}
