// The baseline of `fabric bench snapshots`: the same number of bytes over a plain libp2p stream
// on the same kind of host (tcp, noise, yamux), with no protocol, hashing or store around them.
// The client writes the byte count (8 bytes); the server answers with that many bytes.
import type { Libp2p, PeerInfo, Stream } from '@libp2p/interface'
import { byteStream } from '@libp2p/utils'

export const rawStreamProtocol = '/fabric/bench/raw/1.0.0'
/** Bench traffic only: the most one request may ask for. */
export const maxRawStreamBytes = 16 * 1024 * 1024 * 1024
/** The size of each write, as in ENVIRONMENT.md's loopback measurement. */
const writeBytes = 256 * 1024

/** `shape` wraps each inbound stream (the bench's paced link, shaped-link.ts). */
export async function serveRawStream(libp2p: Libp2p, shape: (stream: Stream) => Stream = (stream) => stream): Promise<void> {
  await libp2p.handle(rawStreamProtocol, (stream) => serveRawStreamOn(shape(stream)))
}

const block = Buffer.alloc(writeBytes, 0xa5)

/** The server's side on one stream (of any transport). */
export async function serveRawStreamOn(stream: Stream): Promise<void> {
  try {
    const bytes = byteStream(stream)
    const header = (await bytes.read({ bytes: 8 })).subarray()
    const total = Number(Buffer.from(header).readBigUInt64BE(0))
    if (!(total >= 0 && total <= maxRawStreamBytes)) throw new Error(`raw stream request of ${total} bytes is out of bounds`)
    for (let sent = 0; sent < total; sent += writeBytes) {
      if (!stream.send(block.subarray(0, Math.min(writeBytes, total - sent)))) await stream.onDrain()
    }
    await stream.close()
  } catch (error) {
    stream.abort(error as Error)
  }
}

/** Receives `total` bytes from `holder`; returns how many arrived. */
export async function receiveRawStream(libp2p: Libp2p, holder: PeerInfo, total: number): Promise<number> {
  return receiveRawStreamOn(await libp2p.dialProtocol(holder.multiaddrs.length > 0 ? holder.multiaddrs : holder.id, rawStreamProtocol), total)
}

/** The client's side on one stream (of any transport). */
export async function receiveRawStreamOn(stream: Stream, total: number): Promise<number> {
  const header = Buffer.alloc(8)
  header.writeBigUInt64BE(BigInt(total))
  stream.send(header)
  let received = 0
  for await (const message of stream) received += message.byteLength
  return received
}
