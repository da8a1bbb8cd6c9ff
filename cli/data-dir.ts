// The data directory a command uses when none is given: $FABRIC_DATA, else ~/.fabric. The daemon
// (`fabric node start`) and the client commands share it, so on one machine no flag is needed.
import { homedir } from 'node:os'
import { join } from 'node:path'

export function defaultDataDir(): string {
  return process.env.FABRIC_DATA ?? join(homedir(), '.fabric')
}
