// `fabric node start` runs the Shuttle daemon in the foreground; `fabric node id` creates (or
// reads) a data directory's identity and prints its peer id, which is what the genesis committee
// (`--voters`) lists. The flags are declared here; what they do is cli/start-shuttle.ts, loaded only
// when one of the two runs (the daemon itself lives in node/).
import type { Command } from 'commander'
import { maxElectionTimeoutMs } from '../../consensus/election-timing.ts'
import { defaultDataDir } from '../data-dir.ts'

const collect = (value: string, previous: string[]): string[] => [...previous, ...value.split(',').map((part) => part.trim()).filter((part) => part !== '')]

export function registerNodeStart(program: Command): void {
  const node = program.commands.find((command) => command.name() === 'node') ?? program.command('node').description('Run and inspect the Shuttle daemon on this machine')

  node
    .command('id')
    .description('Create the identity of a data directory if it has none, and print its peer id (the NodeId voters are named by)')
    .option('--data <dir>', 'the daemon\'s data directory', defaultDataDir())
    .action(async (flags: { data: string }) => {
      const { printNodeId } = await import('../start-shuttle.ts')
      await printNodeId(flags)
    })

  node
    .command('start')
    .description(
      'Run the Shuttle daemon in the foreground. It prints one JSON line on stdout when ready ' +
        '({"event":"ready","peerId",...,"listen":[...]}) and one per change of role, term or leader ' +
        '({"event":"status",...}); logs go to stderr as JSON lines. SIGTERM or SIGINT stops it cleanly.\n\n' +
        'Bootstrap: every node of a new cluster is started with the same set of --voters (peer ids from ' +
        '`fabric node id --data DIR`); the genesis document is derived from it, identically everywhere. ' +
        'After the first start the data directory holds the cluster state and --voters may be omitted.\n\n' +
        'Admission: the first nodes of a closed mesh also get --admin ADMIN_ID (from `fabric admin key`); ' +
        'a node added later starts with --invite TOKEN (from `fabric invite`) instead of --voters.',
    )
    .option('--data <dir>', 'data directory (identity, store, job folders, addresses.json; created if missing)', defaultDataDir())
    .option('--listen <multiaddr...>', 'addresses to listen on', ['/ip4/127.0.0.1/tcp/0'])
    .option('--bootstrap <multiaddr>', 'peer to dial at start and until connected, with /p2p/<id> (repeatable, or comma list)', collect, [])
    .option('--voters <ids>', 'genesis committee: comma list of peer ids (needed on first start)', collect, [])
    .option('--admin <peerId>', 'with --voters on first start: the mesh\'s admin key (its peer id); only invited peers may join. Without it the mesh is open')
    .option('--mesh <id>', 'with --bootstrap on a fresh data directory of an open mesh: boot only from this mesh\'s genesis (its id, from `fabric mesh`)')
    .option('--invite <token>', 'join an existing mesh with an invite from `fabric invite` (first start; bootstrap from the invite unless --bootstrap)')
    .option('--election-timeout <ms>', `the least election timeout T in ms: T follows ten measured round trips to a quorum, within [this, ${maxElectionTimeoutMs}] (heartbeat: this / 5)`, '150')
    .option('--request-fanout <mode>', 'where a request goes first: all-voters (the fastest majority acknowledges) or majority (the leader and just enough others: for daemons sharing one machine\'s cores)', 'all-voters')
    .option('--cpu-millis <n>', 'CPU this node offers at most, in thousandths of a core (default and cap: every CPU of the machine)')
    .option('--memory-mib <n>', 'memory this node offers at most, in MiB (default and cap: the machine\'s memory)')
    .option('--disk-mib <n>', 'disk this node offers to jobs at most, in MiB (capped by the data directory\'s free disk at start)', String(100 * 1024))
    .option('--gpus <n>', 'GPUs this node offers at most (default and cap: every GPU of the first one\'s model that nvidia-smi lists, else that systeminformation finds, NVIDIA or AMD)')
    .option('--provider <name>', 'provider label', 'local')
    .option('--region <name>', 'region label', 'local')
    .option('--az-id <id>', 'availability-zone id', 'local-1')
    .option('--country <code>', 'ISO 3166 country code where the node runs (data sovereignty)', 'ZZ')
    .option('--spot', 'the node is spot capacity (may be reclaimed)')
    .option('--label <key=value>', 'a label job constraints can match (repeatable)', (value: string, previous: string[]) => [...previous, value], [])
    .option('--placement-group <name>', 'the placement group this node is in: nodes of one AZ-ID and group are an island for tightly-coupled gangs')
    .option('--efa', 'the node has an Elastic Fabric Adapter (gangs prefer EFA islands)')
    .option('--gpu-model <model>', 'the GPU model to advertise instead of the probed one (e.g. A100-80GB)')
    .option('--price-per-hour <usd>', 'price of the whole node per hour; bids ask the share a job takes', '0')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .option('--no-sync-writes', 'do not fsync each persist (tests only: a machine crash may lose acknowledged state)')
    .option('--snapshot-transport <name>', 'what carries snapshot transfers: libp2p, or iroh (QUIC on UDP at the libp2p TCP port\'s number)', 'libp2p')
    .option('--config <file>', 'a YAML file of these flags, each key a flag\'s name without dashes (deploy/shuttle.yaml); flags given here win')
    .action(async (given: Record<string, unknown>, command: Command) => {
      const { startShuttle } = await import('../start-shuttle.ts')
      await startShuttle(given, command)
    })
}
