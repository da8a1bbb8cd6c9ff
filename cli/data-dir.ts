// The data directory a command uses when none is given: $FABRIC_DATA, else ~/.fabric. The daemon
// (`fabric node start`) and the client commands share it, so on one machine no flag is needed; a
// client admitted with `fabric join` keeps its key there too.
import { homedir } from 'node:os'
import { join } from 'node:path'

export function defaultDataDir(): string {
  return process.env.FABRIC_DATA ?? join(homedir(), '.fabric')
}

/** Where `fabric join` keeps the client key of a data directory; client commands use it when it exists. */
export function clientKeyPath(dataDir: string): string {
  return join(dataDir, 'client.key')
}
