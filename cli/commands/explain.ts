// `fabric explain ID`: how the leader's auction placed a job: every node considered, who was excluded
// and why, the scores, the winners and the price paid. Only the leader remembers its rounds (its
// last 32); any node asked passes the question on to it.
import type { Command } from 'commander'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'

export function registerExplain(program: Command): void {
  addConnectOptions(
    program
      .command('explain')
      .description("Explain a job's placement: the leader's latest auction round that held it (bids, exclusions, scores, price)")
      .argument('<id>', 'job id')
      .option('--json', 'print the explain record as JSON'),
  ).action(async (jobId: string, flags: ConnectFlags & { json?: boolean }) => {
    const result = await askDaemon(flags, { kind: 'explain', jobId })
    if (flags.json === true) return console.log(JSON.stringify(result, null, 2))
    const { renderExplanationView } = await import('../explanation.ts')
    console.log(renderExplanationView(result.explanation))
    console.log(`(decided by leader ${result.answeredBy} in term ${result.term})`)
  })
}
