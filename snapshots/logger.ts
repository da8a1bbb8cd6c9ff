// The logger port of snapshots/: the daemon's JSON-lines logger (node/logger.ts) fits it as is;
// tests and the bench pass `silentSnapshotLogger`.
export interface SnapshotLogger {
  debug(event: string, fields?: Record<string, unknown>): void
  info(event: string, fields?: Record<string, unknown>): void
  warn(event: string, fields?: Record<string, unknown>): void
}

export const silentSnapshotLogger: SnapshotLogger = { debug() {}, info() {}, warn() {} }
