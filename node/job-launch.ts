// The one place where the core's `start-job` effect and the job's record in the cluster document
// become what a runtime runs (a RunSpec). Today the record carries the command as one text field:
// submissionFromSpec (submission.ts) writes the argv there as a JSON array, so quoting survives;
// any other text is split on whitespace. When the record carries the full job spec, only this file
// and submission.ts change.
import { jobRecord, readText, type Document, type PeerEffect } from '../consensus/index.ts'
import type { RunSpec } from '../runtime/index.ts'

export type StartJobEffect = Extract<PeerEffect, { kind: 'start-job' }>
export type LaunchPlan = { ok: true; spec: RunSpec } | { ok: false; reason: string }

/** Arguments one command text may hold (the runtime has its own, larger maximum). */
export const maxCommandWords = 4_096

/** What to run for `effect`, read from `document` (which holds the job's record when the effect is made). */
export function runSpecFor(effect: StartJobEffect, document: Document): LaunchPlan {
  const job = jobRecord(document, effect.jobId)
  if (job === undefined) return { ok: false, reason: `job ${effect.jobId} is not in the document` }
  const argv = decodeCommand(readText(job.command))
  if (!argv.ok) return argv
  // durationMs is the simulator's stand-in for a process; a real process decides when it ends.
  return { ok: true, spec: { jobId: effect.jobId, command: argv.value, resources: { cpuMillis: effect.demand.cpuMillis, memoryMiB: effect.demand.memoryMiB } } }
}

/** The record's command text for an argv (the inverse of decodeCommand). */
export function encodeCommand(argv: readonly string[]): string {
  return JSON.stringify(argv)
}

export function decodeCommand(text: string): { ok: true; value: string[] } | { ok: false; reason: string } {
  let argv: unknown
  if (text.trimStart().startsWith('[')) {
    try {
      argv = JSON.parse(text)
    } catch {
      argv = undefined
    }
  }
  if (!Array.isArray(argv) || !argv.every((word) => typeof word === 'string')) argv = text.split(/\s+/).filter((word) => word !== '')
  const words = argv as string[]
  if (words.length === 0 || words[0] === '') return { ok: false, reason: 'the job has no command' }
  if (words.length > maxCommandWords) return { ok: false, reason: `the command has ${words.length} words, at most ${maxCommandWords}` }
  return { ok: true, value: words }
}
