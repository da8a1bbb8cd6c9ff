// Waiting in integration tests: read until a condition holds, bounded, with what was last seen (and
// the last error) in the failure message. Daemons change state on their own; tests only observe.
export interface PollOptions {
  /** Between reads (default 150 ms). */
  intervalMs?: number
  /** More to say when it times out (the daemons' state and logs). */
  describe?: () => string
}

export async function poll<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string, options: PollOptions = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: T | undefined
  let lastError: unknown
  for (;;) {
    try {
      last = await read()
      if (done(last)) return last
    } catch (error) {
      lastError = error // not there yet (a daemon restarting, a file not written)
    }
    if (Date.now() > deadline) {
      const more = options.describe === undefined ? '' : `\n${options.describe()}`
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)} ${lastError === undefined ? '' : String(lastError)}${more}`)
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 150))
  }
}
