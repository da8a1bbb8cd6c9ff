// The counting workload the checkpoint tests use: a POSIX shell loop (so busybox runs it too) that
// prints 0, 1, 2, ... keeping its counter only in memory, so a restore can only go on from the
// number it stopped at if CRIU brought its memory back. Creating `finish` in its working folder
// makes it exit with code 7 (an exit status the restored job must report).
import { waitFor } from './runtime-compliance.ts'

export const countingScript = 'i=0; while [ ! -e finish ]; do echo $i; i=$((i+1)); sleep 0.05; done; exit 7'
export const countingExitCode = 7

/** The numbers in a counting log, in order. */
export function countsIn(log: string): number[] {
  return log.split('\n').filter((line) => line !== '').map(Number)
}

/** Asserts `numbers` is first, first+1, ... with no gap or repeat; returns the last. */
export function assertConsecutive(numbers: readonly number[], first: number): number {
  numbers.forEach((value, index) => {
    if (value !== first + index) throw new Error(`the count is not consecutive at position ${index}: expected ${first + index}, got ${value} (${numbers.slice(Math.max(0, index - 3), index + 3).join(',')})`)
  })
  return first + numbers.length - 1
}

/** Waits until `read()` holds at least `count` numbers. */
export async function waitForCounts(read: () => Promise<string>, count: number, timeoutMs: number): Promise<number[]> {
  let numbers: number[] = []
  await waitFor(async () => (numbers = countsIn(await read())).length >= count, timeoutMs, `${count} numbers in the log`)
  return numbers
}
