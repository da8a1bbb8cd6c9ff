// A snapshot holder in its own process: opens a chunk store, serves it over
// /fabric/snapshots/1.0.0 (and the raw baseline stream) on a loopback libp2p host, and prints one
// JSON line {"event":"ready",...} on stdout. A line "counters" on stdin is answered with the
// server's counters and the process's CPU time; end of stdin or SIGTERM stops it. The bench and the integration tests run
// holders this way so that a holder can be killed for real and restarted on its store.
// With --iroh it serves the same store over iroh too (same key, so the same peer id), and the
// ready line carries its UDP addresses. With --link-mbps N everything it writes (snapshot answers
// and the raw stream alike) is paced to N MB/s, as if it sat behind its own link of that speed.
//   node snapshots/holder-main.ts --store DIR [--iroh] [--link-mbps N]
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { ChunkStore } from './chunk-store.ts'
import { createSnapshotHost } from './host.ts'
import { silentSnapshotLogger } from './logger.ts'
import { IrohSnapshotTransport, irohRawAlpn } from './iroh-transport.ts'
import { serveRawStream, serveRawStreamOn } from './raw-stream.ts'
import { ShapedLink } from './shaped-link.ts'
import { SnapshotServer, type SnapshotServerCounters } from './snapshot-server.ts'
import { libp2pSnapshotTransport, type SnapshotTransport } from './transport.ts'

const { values } = parseArgs({ options: { store: { type: 'string' }, iroh: { type: 'boolean', default: false }, 'link-mbps': { type: 'string' } } })
if (values.store === undefined) {
  process.stderr.write('usage: holder-main.ts --store DIR [--iroh] [--link-mbps N]\n')
  process.exit(1)
}
const linkMbps = values['link-mbps'] === undefined ? null : Number(values['link-mbps'])
if (linkMbps !== null && !(Number.isFinite(linkMbps) && linkMbps > 0)) {
  process.stderr.write(`--link-mbps must be a positive number of megabytes per second, got "${values['link-mbps']}"\n`)
  process.exit(1)
}
// One link for the whole holder: its streams share the rate, over either transport.
const link = linkMbps === null ? null : new ShapedLink({ megabytesPerSecond: linkMbps })
const shape = (stream: Stream): Stream => link?.shape(stream) ?? stream
const shaped = (transport: SnapshotTransport): SnapshotTransport => link === null ? transport : {
  name: transport.name,
  get peerId() {
    return transport.peerId
  },
  dial: (holder, options) => transport.dial(holder, options),
  handle: (handler, options) => transport.handle((stream, from) => handler(shape(stream), from), options),
  unhandle: () => transport.unhandle(),
}
const store = await ChunkStore.open({ directory: values.store, syncWrites: false })
const privateKey = await generateKeyPair('Ed25519')
const libp2p = await createSnapshotHost({ privateKey })
const server = new SnapshotServer({ transport: shaped(libp2pSnapshotTransport(libp2p)), store, logger: silentSnapshotLogger })
await server.start()
await serveRawStream(libp2p, shape)
const iroh = values.iroh ? await IrohSnapshotTransport.create({ privateKey }) : null
const irohServer = iroh === null ? null : new SnapshotServer({ transport: shaped(iroh), store, logger: silentSnapshotLogger })
await irohServer?.start()
await iroh?.handleProtocol(irohRawAlpn, (stream) => void serveRawStreamOn(shape(stream)), { maxInboundStreamsPerConnection: 16 })

let stopping: Promise<void> | null = null
const stop = (): Promise<void> =>
  (stopping ??= (async () => {
    await server.stop()
    await irohServer?.stop()
    await iroh?.close()
    await libp2p.stop()
    await store.close()
    process.exit(0)
  })())
process.on('SIGTERM', () => void stop())
const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (line.trim() !== 'counters') return
  // CPU time of this whole process (all threads), so the bench can say where the cycles went.
  const cpu = process.cpuUsage()
  process.stdout.write(`${JSON.stringify({ event: 'counters', ...sum(server.counters, irohServer?.counters), cpuMs: Math.round((cpu.user + cpu.system) / 1_000) })}\n`)
})
lines.on('close', () => void stop())
process.stdout.write(`${JSON.stringify({ event: 'ready', peerId: libp2p.peerId.toString(), addresses: libp2p.getMultiaddrs().map(String), irohAddresses: iroh?.multiaddrs.map(String) ?? [] })}\n`)

/** Both servers' counters together (they serve one store). */
function sum(a: SnapshotServerCounters, b: SnapshotServerCounters | undefined): SnapshotServerCounters {
  if (b === undefined) return a
  return Object.fromEntries(Object.entries(a).map(([key, value]) => [key, value + b[key as keyof SnapshotServerCounters]])) as unknown as SnapshotServerCounters
}
