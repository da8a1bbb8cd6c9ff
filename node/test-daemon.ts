// A standalone entry for the daemon commands (`node node/test-daemon.ts node start ...`), used by
// the integration tests until cli/main.ts registers them; it behaves like `fabric node ...`.
import { Command } from 'commander'
import { registerNodeStart } from '../cli/commands/node-start.ts'
import { UserError } from '../cli/user-error.ts'

const program = new Command().name('fabric')
registerNodeStart(program)
try {
  await program.parseAsync(process.argv)
} catch (error) {
  if (error instanceof UserError) {
    console.error(`fabric: ${error.message}`)
    if (error.hint) console.error(`hint: ${error.hint}`)
    process.exit(1)
  }
  console.error('fabric: internal error (this is a bug, please report it):')
  console.error(error)
  process.exit(2)
}
