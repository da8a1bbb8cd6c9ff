// A stand-in daemon for tests: starts one job with the process runtime in the data folder given as
// argv[2] (PID namespace 'auto' or 'off' as argv[3]), prints {"pid": ...} once it runs, and waits to
// be killed. The test then SIGKILLs this process and checks the job did not outlive it.
import { asJobId } from '../../consensus/index.ts'
import { ProcessRuntime } from '../process-runtime.ts'

const [dataDir, pidNamespace] = [process.argv[2], process.argv[3]]
if (dataDir === undefined || (pidNamespace !== 'auto' && pidNamespace !== 'off')) {
  console.error('usage: hold-job.ts DATA_DIR auto|off')
  process.exit(2)
}
const silent = { debug() {}, info() {}, warn() {}, error() {} }
const runtime = new ProcessRuntime({ dataDir, pidNamespace, cgroups: 'off' }, { logger: silent })
const handle = await runtime.start({ jobId: asJobId('held'), command: ['/bin/sh', '-c', 'sleep 1000 & echo up > up; wait'] })
process.stdout.write(`${JSON.stringify({ pid: handle.pid })}\n`)
setInterval(() => {}, 60_000)
