// The `fabric` command tree: every command registered, parsed, errors mapped to exit codes (user
// errors exit 1 with a hint, anything else is a bug and exits 2). Loaded by main.ts.
// Registering a command (name, flags, help) loads commander and small modules only; its action
// imports what it runs when it runs (`await import(...)`), so `fabric --help` and a command's --help
// load no libp2p, Automerge or zod (cli/lazy-loading.test.ts checks it).
import { flushCompileCache } from 'node:module'
import { Command, Help } from 'commander'
import { registerSim } from './commands/sim.ts'
import { registerBench } from './commands/bench.ts'
import { registerPlan } from './commands/plan.ts'
import { registerNodeStart } from './commands/node-start.ts'
import { registerDoctor } from './commands/doctor.ts'
import { registerSubmit } from './commands/submit.ts'
import { registerJobs } from './commands/jobs.ts'
import { registerLogs } from './commands/logs.ts'
import { registerNodes } from './commands/nodes.ts'
import { registerAdmission } from './commands/admission.ts'
import { registerCancel } from './commands/cancel.ts'
import { registerMigrate } from './commands/migrate.ts'
import { registerCheckpoint } from './commands/checkpoint.ts'
import { registerDrain } from './commands/drain.ts'
import { registerExplain } from './commands/explain.ts'
import { registerNodeStatus } from './commands/node-status.ts'
import { registerDemo } from './commands/demo.ts'
import { UserError } from './user-error.ts'

const program = new Command()
program
  .name('fabric')
  .description(
    'Fabric: a peer-to-peer mesh that places and runs workloads across clouds with no central server.\n' +
      'Every machine runs the same daemon (the Shuttle); a committee elects a leader that places jobs.',
  )
  .showHelpAfterError('(run with --help for usage)')
  .configureHelp({
    // Subcommands sorted by code point rather than by commander's sortSubcommands: its localeCompare
    // loads ICU's collator on first use, 10-20 ms of a `fabric --help`; for these lowercase ASCII
    // names the order is the same. Subcommands inherit this when they are created.
    visibleCommands(command: Command): Command[] {
      return Help.prototype.visibleCommands.call(this, command).sort((a, b) => (a.name() < b.name() ? -1 : a.name() > b.name() ? 1 : 0))
    },
  })

registerSim(program)
registerBench(program)
registerPlan(program)
registerNodeStart(program)
registerDoctor(program)
registerSubmit(program)
registerJobs(program)
registerLogs(program)
registerNodes(program)
registerAdmission(program)
registerCancel(program)
registerMigrate(program)
registerCheckpoint(program)
registerDrain(program)
registerExplain(program)
registerNodeStatus(program)
registerDemo(program)

try {
  // Write the compile cache now (Node writes it at exit otherwise, and a daemon runs for months).
  flushCompileCache()
  await program.parseAsync(process.argv)
} catch (error) {
  if (error instanceof UserError) {
    console.error(`fabric: ${error.message}`)
    if (error.hint) console.error(`hint: ${error.hint}`)
    process.exit(error.exitCode)
  }
  console.error('fabric: internal error (this is a bug, please report it):')
  console.error(error)
  process.exit(2)
}
