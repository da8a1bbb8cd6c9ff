// The flags of every command that asks a daemon (--node, --data, --key, --mesh, --timeout). Kept apart
// from daemon-client.ts, which does the asking: registering a command must not load libp2p.
import type { Command } from 'commander'
import { defaultDataDir } from './data-dir.ts'

export const defaultRequestTimeoutMs = 60_000

export interface ConnectFlags {
  node?: string
  data: string
  mesh?: string
  key?: string
  timeout: string
}

export function addConnectOptions(command: Command): Command {
  return command
    .option('--node <multiaddr>', 'the daemon to ask (default: the one running on --data)')
    .option('--data <dir>', 'data directory of the local daemon to ask (its addresses.json)', defaultDataDir())
    .option('--key <file>', 'client key file (Ed25519; created if missing); default: DATA/client.key from `fabric join` if present, else a fresh key per call')
    .option('--mesh <id>', 'the mesh id (genesis SHA-256) requests are signed for; default: $FABRIC_MESH, else the local daemon\'s, else the one the daemon asked names (trusted on first use)')
    .option('--timeout <ms>', 'give up on an answer after this long (not for logs -f)', String(defaultRequestTimeoutMs))
}
