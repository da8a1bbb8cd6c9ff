// `fabric logs ID [-f]`: a job's output, from whichever node is asked (a daemon that did not run
// the job passes the request on to the one that did). With -f it streams until the job ends.
// stdout of the job goes to stdout, its stderr to stderr (or, with --json, one JSON line per chunk).
import type { Command } from 'commander'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { UserError } from '../user-error.ts'

interface LogsFlags extends ConnectFlags {
  follow?: boolean
  stream: string
  json?: boolean
}

export function registerLogs(program: Command): void {
  addConnectOptions(
    program
      .command('logs')
      .description("Print a job's output (stdout and stderr), asked of any node")
      .argument('<id>', 'job id')
      .option('-f, --follow', 'keep streaming until the job ends (waits for it to start)')
      .option('--stream <which>', 'stdout, stderr or both', 'both')
      .option('--json', 'one JSON line per chunk: {"stream","offsetBytes","text"}'),
  ).action(async (jobId: string, flags: LogsFlags) => {
    const [{ logStreams }, { clientFrames, ClientRequestError }, { withDaemon }] = await Promise.all([import('../../node/client-wire.ts'), import('../../node/client-connection.ts'), import('../daemon-client.ts')])
    const stream = flags.stream
    if (!(logStreams as readonly string[]).includes(stream)) throw new UserError(`--stream must be stdout, stderr or both, got "${stream}"`)
    const follow = flags.follow === true
    await withDaemon(flags, async ({ libp2p, target, signal }) => {
      // A follow runs until the job ends or Ctrl-C; a plain read is bounded by --timeout.
      const interrupted = new AbortController()
      const onInterrupt = (): void => interrupted.abort()
      process.once('SIGINT', onInterrupt)
      try {
        const frames = clientFrames(libp2p, target, { kind: 'logs', jobId, follow, stream: stream as (typeof logStreams)[number] }, { signal: follow ? interrupted.signal : AbortSignal.any([signal, interrupted.signal]) })
        for await (const frame of frames) {
          if (frame.type === 'log') {
            if (flags.json === true) process.stdout.write(`${JSON.stringify({ stream: frame.stream, offsetBytes: frame.offsetBytes, text: frame.text })}\n`)
            else await write(frame.stream === 'stderr' ? process.stderr : process.stdout, frame.text)
          } else if (frame.type === 'error') {
            throw new ClientRequestError(frame.jobId === undefined ? frame : { ...frame, jobId: frame.jobId })
          }
        }
      } catch (error) {
        if (interrupted.signal.aborted) return
        throw error
      } finally {
        process.off('SIGINT', onInterrupt)
      }
    })
  })
}

/** Writes with backpressure, so a slow terminal or pipe slows the stream instead of buffering it all. */
function write(output: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (output.write(text)) resolve()
    else {
      output.once('drain', resolve)
      output.once('error', reject)
    }
  })
}
