// `fabric demo` (the README's main command, `npm start`): a local mesh on loopback, jobs placed and
// run, the leader SIGKILLed, jobs still finishing; see cli/demo-tour.ts. Ctrl-C stops the mesh too.
import type { Command } from 'commander'
import { positiveInteger } from '../parse.ts'
import { UserError } from '../user-error.ts'

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Start a local mesh of daemons (separate processes on 127.0.0.1), run jobs on it, SIGKILL the leader, watch the jobs finish anyway, and stop it all')
    .option('--nodes <n>', 'daemons to start (3 to 7)', '3')
    .option('--job-seconds <s>', 'how long each job in flight at the kill runs', '6')
    .option('--json', 'the tour on stderr, then what it saw as one JSON object on stdout')
    .action(async (flags: { nodes: string; jobSeconds: string; json?: boolean }) => {
      const nodes = positiveInteger('--nodes', flags.nodes)
      if (nodes < 3 || nodes > 7) throw new UserError(`--nodes must be 3 to 7, got ${nodes}`, 'a leader must survive losing one node: 3 is the smallest such mesh')
      const jobSeconds = positiveInteger('--job-seconds', flags.jobSeconds)
      const { DemoAbortedError, runDemo } = await import('../demo-tour.ts')
      const interrupted = new AbortController()
      const onSignal = (): void => {
        console.log('interrupted: stopping the mesh')
        interrupted.abort()
      }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      try {
        const summary = await runDemo({ nodes, jobSeconds, print: (line) => (flags.json === true ? console.error(line) : console.log(line)), signal: interrupted.signal })
        if (flags.json === true) console.log(JSON.stringify(summary))
      } catch (error) {
        if (error instanceof DemoAbortedError || interrupted.signal.aborted) {
          process.exitCode = 130
          return
        }
        throw new UserError(`the demo failed: ${(error as Error).message}`, 'run it again; if it fails the same way, this is a bug worth reporting')
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
    })
}
