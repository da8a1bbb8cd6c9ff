// A client request whose answer streams progress and moved frames before its result (checkpoint,
// drain, a followed migrate): each such frame goes to `onFrame` as it comes, the result is checked
// against its kind's schema and returned, an error frame throws like clientCall's.
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { ClientConnectionError, ClientRequestError, clientFrames } from '../node/client-connection.ts'
import { decodeClientResult, type ClientRequestBody, type ClientResponse, type ClientResult } from '../node/client-wire.ts'

export type StreamedFrame = Extract<ClientResponse, { type: 'progress' | 'moved' }>

export async function streamCall<K extends 'checkpoint' | 'drain' | 'migrate'>(
  libp2p: Libp2p,
  target: Multiaddr,
  body: ClientRequestBody & { kind: K },
  signal: AbortSignal,
  onFrame: (frame: StreamedFrame) => void,
): Promise<ClientResult<K>> {
  for await (const frame of clientFrames(libp2p, target, body, { signal })) {
    if (frame.type === 'progress' || frame.type === 'moved') onFrame(frame)
    else if (frame.type === 'error') throw new ClientRequestError(frame.jobId === undefined ? frame : { ...frame, jobId: frame.jobId })
    else if (frame.type === 'result') {
      const result = decodeClientResult(body.kind as K, frame.value)
      if (!result.ok) throw new ClientConnectionError({ target: target.toString(), reason: `unreadable answer: ${result.reason}` })
      return result.value
    }
  }
  throw new ClientConnectionError({ target: target.toString(), reason: 'the daemon closed the stream without an answer' })
}
