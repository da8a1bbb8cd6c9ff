// Renders an explain record received from a daemon (checked against the wire schema) with
// placement's table renderer; `rowsOmitted` notes rows the daemon left out to stay within its limit.
import type { ExplanationView } from '../node/index.ts'
import { renderExplanation, type JobExplanation } from '../placement/index.ts'
import { UserError } from './user-error.ts'

export function renderExplanationView(view: ExplanationView): string {
  let text: string
  try {
    // The wire schema checked the fields the renderer reads; exclusion and pending reasons are tagged by kind.
    text = renderExplanation(view as unknown as JobExplanation, { maxRows: 60 })
  } catch (error) {
    throw new UserError(`the daemon's explain record cannot be rendered (${(error as Error).message})`, 'print it with --json')
  }
  return view.rowsOmitted === undefined ? text : `${text}\n(${view.rowsOmitted} more node(s) not sent by the daemon)`
}
