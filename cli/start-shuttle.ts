// What `fabric node start` and `fabric node id` do once their flags are parsed (commands/node-start.ts
// registers them): start the Shuttle in this process, or print a data directory's peer id. Loaded only
// when one of them runs: it brings the whole daemon (libp2p, Automerge, the store, the runtimes).
import { peerIdFromString } from '@libp2p/peer-id'
import { asNodeId, maxElectionTimeoutMs } from '../consensus/index.ts'
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
} from '../node/index.ts'
import { integer } from './parse.ts'
import type { Command } from 'commander'
import { configurationExitCode, UserError } from './user-error.ts'
import { applyNodeConfig, readNodeConfig } from './node-config.ts'
import { checkPlacementGroup, NodeAttributeError, parseLabels } from '../node/node-attributes.ts'
import { snapshotTransportNames, type SnapshotTransportName } from '../snapshots/transport.ts'

/** `fabric node id`: creates the identity if there is none and prints its peer id. */
export async function printNodeId(flags: { data: string }): Promise<void> {
  const identity = await loadOrCreateIdentity(flags.data).catch(userErrors)
  console.log(JSON.stringify({ peerId: identity.nodeId, created: identity.created }))
}

/** `fabric node start`: reads --config, checks the flags, joins or fetches the genesis when asked, and runs the Shuttle until a signal. */
export async function startShuttle(given: Record<string, unknown>, command: Command): Promise<void> {
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
