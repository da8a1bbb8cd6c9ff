// `fabric node start` runs the Shuttle daemon in the foreground; `fabric node id` creates (or
// reads) a data directory's identity and prints its peer id, which is what the genesis committee
// (`--voters`) lists. Flags are parsed here; the daemon itself lives in node/.
import { peerIdFromString } from '@libp2p/peer-id'
import type { Command } from 'commander'
import { asNodeId, maxElectionTimeoutMs } from '../../consensus/index.ts'
import {
  GenesisMismatchError,
  IdentityFileError,
  JoinFailedError,
  JoinRefusedError,
  MissingGenesisError,
  assertPeerId,
  joinAsNode,
  genesisFromBootstrap,
  Shuttle,
  isLogLevel,
  jsonLogger,
  loadOrCreateIdentity,
  localOffer,
  offeredCapacity,
  offeredGpus,
  probeMachine,
  type ShuttleStatus,
} from '../../node/index.ts'
import { defaultDataDir } from '../data-dir.ts'
import { integer } from '../parse.ts'
import { configurationExitCode, UserError } from '../user-error.ts'
import { applyNodeConfig, readNodeConfig } from '../node-config.ts'
import { checkPlacementGroup, NodeAttributeError, parseLabels } from '../../node/node-attributes.ts'
import { snapshotTransportNames, type SnapshotTransportName } from '../../snapshots/transport.ts'

const collect = (value: string, previous: string[]): string[] => [...previous, ...value.split(',').map((part) => part.trim()).filter((part) => part !== '')]

export function registerNodeStart(program: Command): void {
  const node = program.commands.find((command) => command.name() === 'node') ?? program.command('node').description('Run and inspect the Shuttle daemon on this machine')

  node
    .command('id')
    .description('Create the identity of a data directory if it has none, and print its peer id (the NodeId voters are named by)')
    .option('--data <dir>', 'the daemon\'s data directory', defaultDataDir())
    .action(async (flags: { data: string }) => {
      const identity = await loadOrCreateIdentity(flags.data).catch(userErrors)
      console.log(JSON.stringify({ peerId: identity.nodeId, created: identity.created }))
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
      if (given.config !== undefined) applyNodeConfig(command, readNodeConfig(String(given.config)))
      const flags = command.opts()
      const logLevel = String(flags.logLevel)
      if (!isLogLevel(logLevel)) throw new UserError(`--log-level must be debug, info, warn or error, got "${logLevel}"`)
      const price = Number(flags.pricePerHour)
      if (!Number.isFinite(price) || price < 0) throw new UserError(`--price-per-hour must be a non-negative number, got "${String(flags.pricePerHour)}"`)
      const requestFanout = String(flags.requestFanout)
      if (requestFanout !== 'all-voters' && requestFanout !== 'majority') throw new UserError(`--request-fanout must be all-voters or majority, got "${requestFanout}"`)
      const electionTimeoutMs = integer('--election-timeout', flags.electionTimeout)
      if (electionTimeoutMs < 10 || electionTimeoutMs > maxElectionTimeoutMs) throw new UserError(`--election-timeout must be between 10 and ${maxElectionTimeoutMs} ms (its upper bound as round trips grow), got ${electionTimeoutMs}`)
      const voters = flags.voters as string[]
      for (const voter of voters) {
        try {
          peerIdFromString(voter)
        } catch {
          throw new UserError(`--voters: "${voter}" is not a peer id`, 'peer ids come from `fabric node id --data DIR`')
        }
      }
      const admin = flags.admin as string | undefined
      const invite = flags.invite as string | undefined
      if (admin !== undefined) {
        if (voters.length === 0) throw new UserError('--admin goes with --voters, on the first start of a new mesh', 'a node joining an existing mesh takes --invite TOKEN instead')
        try {
          assertPeerId(admin, '--admin')
        } catch (error) {
          throw new UserError((error as Error).message, 'the admin id is what `fabric admin key --out FILE` printed')
        }
      }
      if (invite !== undefined && voters.length > 0) throw new UserError('--invite takes the mesh from the invite; --voters (and --admin) are for the first nodes of a new mesh')
      const snapshotTransport = String(flags.snapshotTransport)
      if (!snapshotTransportNames.includes(snapshotTransport as SnapshotTransportName)) throw new UserError(`--snapshot-transport must be one of ${snapshotTransportNames.join(', ')}, got "${snapshotTransport}"`)
      let attributes
      try {
        attributes = {
          labels: parseLabels(flags.label as string[]),
          ...(flags.placementGroup !== undefined ? { placementGroup: checkPlacementGroup(String(flags.placementGroup)) } : {}),
          efa: flags.efa === true,
        }
      } catch (error) {
        if (error instanceof NodeAttributeError) throw new UserError(error.message)
        throw error
      }
      const gpuModel = flags.gpuModel as string | undefined
      if (gpuModel !== undefined && !/^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,127}$/.test(gpuModel)) throw new UserError(`--gpu-model: "${gpuModel.slice(0, 80)}" must be 1-128 letters, digits, spaces or . _ ( ) -`)
      const logger = jsonLogger({ component: 'shuttle', level: logLevel })
      const printLine = (value: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(value)}\n`) }
      let bootstrap = flags.bootstrap as string[]
      let genesis: Uint8Array | undefined
      if (invite !== undefined) {
        const joined = await joinAsNode({ dataDir: String(flags.data), token: invite, bootstrap }).catch(userErrors)
        bootstrap = joined.bootstrap
        if (joined.genesis !== null) genesis = joined.genesis
        if (joined.joined !== null) printLine({ event: 'joined', meshId: joined.joined.meshId, role: joined.joined.role, admittedBy: joined.joined.node, via: joined.joined.via })
      } else if (voters.length === 0 && bootstrap.length > 0) {
        // A fresh node of an existing mesh with only --bootstrap: an open mesh hands out its genesis, a closed one says an invite is needed.
        const mesh = flags.mesh as string | undefined
        if (mesh !== undefined && !/^[0-9a-f]{64}$/.test(mesh)) throw new UserError(`--mesh: "${mesh.slice(0, 80)}" is not a mesh id (64 lowercase hex digits)`)
        const fetched = await genesisFromBootstrap({ dataDir: String(flags.data), bootstrap, ...(mesh !== undefined ? { meshId: mesh } : {}) }).catch(userErrors)
        if (fetched !== null) {
          genesis = fetched.genesis
          printLine({ event: 'genesis-fetched', meshId: fetched.meshId, from: fetched.node, via: fetched.via })
        }
      }
      // The machine's inventory caps what the flags ask to offer (machine-resources.ts).
      const machine = await probeMachine(String(flags.data))
      if (machine.error !== undefined) logger.warn('machine-probe-failed', { error: machine.error })
      if (machine.gpuProblem !== undefined) logger.warn('gpu-probe-problem', { problem: machine.gpuProblem, fallback: `${machine.gpus.length} GPU(s) from systeminformation` })
      logger.info('machine', { source: machine.source, cpus: machine.cpus, memoryTotalMiB: machine.memoryTotalMiB, memoryAvailableMiB: machine.memoryAvailableMiB, gpus: machine.gpus, gpuSource: machine.gpuSource, graphics: machine.graphics.length, disk: machine.disk })
      const limit = (flag: string, value: unknown): number => (value === undefined ? Number.POSITIVE_INFINITY : integer(flag, value))
      const capacity = offeredCapacity({ cpuMillis: limit('--cpu-millis', flags.cpuMillis), memoryMiB: limit('--memory-mib', flags.memoryMib), diskMiB: integer('--disk-mib', flags.diskMib), gpuCount: limit('--gpus', flags.gpus) }, machine)
      // The devices jobs get: the offered GPUs' indices (the leader counts them, the runner hands them out).
      const gpus = offeredGpus(capacity.gpuCount, machine)
      if (gpuModel !== undefined && gpus.length === 0) logger.warn('gpu-model-ignored', { gpuModel, reason: 'this node offers no GPU' })
      const probedGpu = gpus[0]
      const gpu = probedGpu === undefined ? undefined : { ...probedGpu, ...(gpuModel !== undefined ? { model: gpuModel } : {}) }
      const shuttle = new Shuttle(
        {
          dataDir: String(flags.data),
          listen: flags.listen as string[],
          bootstrap,
          voters: voters.map(asNodeId),
          ...(admin !== undefined ? { admin } : {}),
          ...(genesis !== undefined ? { genesis } : {}),
          electionTimeoutMs,
          syncWrites: flags.syncWrites !== false,
          requestFanout,
          snapshotTransport: snapshotTransport as SnapshotTransportName,
          gpuDevices: gpus.map((device) => device.index),
          attributes: {
            offer: localOffer({
              capacity,
              ...(gpu !== undefined ? { gpu: { model: gpu.model, memoryMiB: gpu.memoryMiB } } : {}),
              provider: String(flags.provider),
              region: String(flags.region),
              azId: String(flags.azId),
              country: String(flags.country),
              pricePerHour: price,
              spot: flags.spot === true,
              ...attributes,
            }),
          },
        },
        {
          logger,
          onReady: (ready) => printLine({ event: 'ready', peerId: ready.nodeId, listen: ready.addresses, term: ready.term, voters: ready.voters }),
          onStatus: (status: ShuttleStatus) => printLine({ event: 'status', ...status }),
          onFatal: () => {
            process.exitCode = 2
            void shuttle.stop().then(() => process.exit(2))
          },
        },
      )
      let stopping: Promise<void> | null = null
      const stop = (signal: string): void => {
        logger.info('signal', { signal })
        stopping ??= shuttle.stop().then(() => process.exit(process.exitCode ?? 0))
      }
      process.once('SIGTERM', () => stop('SIGTERM'))
      process.once('SIGINT', () => stop('SIGINT'))
      await shuttle.start().catch(userErrors)
      // Runs until a signal: libp2p's listeners keep the event loop alive.
    })
}

/** Map the daemon's start-up refusals that a user can fix to UserError (exit 1 with a hint). */
function userErrors(error: unknown): never {
  if (error instanceof MissingGenesisError) throw new UserError(error.message, 'pass --voters ID,ID,... (peer ids from `fabric node id --data DIR`) on the first start of a new mesh, --invite TOKEN to join a closed one, or --bootstrap ADDR to join an open one', configurationExitCode)
  if (error instanceof JoinRefusedError && error.code === 'invite-needed') throw new UserError(`cannot join: ${error.message}`, 'a closed mesh takes nodes by invite: start with --invite TOKEN (the admin runs `fabric invite --peer THIS_NODE_ID`; `fabric node id` prints it)', configurationExitCode)
  if (error instanceof GenesisMismatchError) throw new UserError(error.message, 'use a fresh --data directory for a different cluster, or the original --voters list (and --admin, if it had one)')
  if (error instanceof IdentityFileError) throw new UserError(error.message, 'restore the key file from a backup or start with a fresh --data directory')
  if (error instanceof JoinRefusedError) throw new UserError(`cannot join: ${error.message}`, 'ask the mesh\'s admin for a new invite (`fabric invite --peer THIS_NODE_ID`)')
  if (error instanceof JoinFailedError) throw new UserError(`cannot join: ${error.message}`, 'check --bootstrap (or the invite\'s addresses) and that those nodes run')
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE' || code === 'EACCES') throw new UserError(`cannot listen: ${(error as Error).message}`, 'choose another --listen address or port')
  throw error
}
