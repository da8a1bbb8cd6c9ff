// One request to a daemon and its one answer, as most client commands need it. The client modules
// (libp2p, the wire schemas) are imported here when a command runs, not when it is registered, so
// `fabric --help` and a command's --help load none of them.
import type { ClientRequestBody, ClientRequestKind, ClientResult } from '../node/client-wire.ts'
import type { ConnectFlags } from './connect-options.ts'

export async function askDaemon<K extends Exclude<ClientRequestKind, 'logs'>>(flags: ConnectFlags, body: ClientRequestBody & { kind: K }): Promise<ClientResult<K>> {
  const [{ withDaemon }, { clientCall }] = await Promise.all([import('./daemon-client.ts'), import('../node/client-connection.ts')])
  return withDaemon(flags, ({ libp2p, target, signal }) => clientCall<K>(libp2p, target, body, { signal }))
}
