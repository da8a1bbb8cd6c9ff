// Structured logging for the daemon: one JSON object per line, a component name on every line.
// Each component receives its own logger (STYLE: loggers are injected per component), so tests
// can capture lines and the daemon can route them (stderr by default; stdout stays for status).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void
  info(event: string, fields?: Record<string, unknown>): void
  warn(event: string, fields?: Record<string, unknown>): void
  error(event: string, fields?: Record<string, unknown>): void
  child(component: string): Logger
}

export interface LogSink { write(line: string): void }

export function isLogLevel(value: string): value is LogLevel {
  return value in levelRank
}

/** A logger writing JSON lines to `sink` (stderr by default), dropping lines under `level`. */
export function jsonLogger(options: { component: string; level?: LogLevel; sink?: LogSink; nowMs?: () => number }): Logger {
  const minimum = levelRank[options.level ?? 'info']
  const sink = options.sink ?? { write: (line: string) => process.stderr.write(line) }
  const nowMs = options.nowMs ?? Date.now
  const make = (component: string): Logger => {
    const log = (level: LogLevel) => (event: string, fields?: Record<string, unknown>): void => {
      if (levelRank[level] < minimum) return
      sink.write(`${JSON.stringify({ at: new Date(nowMs()).toISOString(), level, component, event, ...fields }, jsonReplacer)}\n`)
    }
    return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: (name) => make(`${component}.${name}`) }
  }
  return make(options.component)
}

/** A logger that discards everything (unit tests that do not look at logs). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message }
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return `<${value.length} bytes>`
  return value
}
