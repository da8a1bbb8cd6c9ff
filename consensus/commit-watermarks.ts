// What this node knows is committed, per term: the document's commit markers, and the watermarks
// learned sooner from the leader's awards and heartbeats (the document's markers lag).
import { isCommitted, type Document } from './cluster-document.ts'

export class CommitWatermarks {
  readonly #maxTerms: number
  readonly #known = new Map<number, number>()
  /** Bumped on every news, so what was computed from this knowledge can be cached. */
  version = 0

  constructor(maxTerms: number) {
    this.#maxTerms = maxTerms
  }

  /** Records that `term`'s decisions up to `seq` are committed; true when that is news. */
  learn(term: number, seq: number): boolean {
    if ((this.#known.get(term) ?? 0) >= seq) return false
    if (!this.#known.has(term) && this.#known.size >= this.#maxTerms) return false
    this.#known.set(term, seq)
    this.version++
    return true
  }

  isCommitted(document: Document, assignment: { term: number; seq: number }): boolean {
    return isCommitted(document, assignment) || (this.#known.get(assignment.term) ?? 0) >= assignment.seq
  }
}
