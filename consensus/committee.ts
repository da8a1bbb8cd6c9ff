// The committee as the document holds it: the genesis voters and the changes leaders proposed since,
// each stamped with the decision (term, seq) that wrote it. Only committed changes count, and the
// latest committed one (by stamp) is the committee in force, so a deposed leader's uncommitted
// proposal that survives on a minority never becomes anyone's committee. A proposal later than the
// committee in force and not yet committed is pending: its decision commits only with majorities of
// both committees (quorum.ts), and a new leader's first decision takes it over (ratification), or a
// stale one is superseded by that decision's own stamp. Every peer computes the same committee from
// the same document and commit knowledge.
import * as A from '@automerge/automerge'
import { asNodeId, type NodeId } from './types.ts'
import { isCommitted as committedInDocument, readText, type ClusterDocument, type Document } from './cluster-document.ts'

export interface CommitteeConfig {
  voters: NodeId[]
  /** The decision that proposed it (term 0, seq 0: the genesis committee). */
  term: number
  seq: number
}

export type IsCommitted = (stamp: { term: number; seq: number }) => boolean

/** The largest committee (STYLE: a named maximum); quorum.ts allows 3 to 7 in a change. */
export const maxVoters = 7

const stampKey = (term: number, seq: number): string => `${term}.${seq}`
const later = (a: { term: number; seq: number }, b: { term: number; seq: number }): boolean => a.term > b.term || (a.term === b.term && a.seq > b.seq)

export function genesisCommittee(document: Document): CommitteeConfig {
  const voters = Object.keys(document.committee.voters).filter((id) => document.committee.voters[id] === true).sort().map(asNodeId)
  return { voters, term: 0, seq: 0 }
}

/** Parsed proposals per version of the changes map (Automerge keeps an unchanged map's object across versions). */
const proposalCache = new WeakMap<object, CommitteeConfig[]>()

/** Every proposal in the document, oldest first; a record that does not read as a voter list is skipped. */
export function proposals(document: Document): CommitteeConfig[] {
  const cached = proposalCache.get(document.committee.changes)
  if (cached !== undefined) return cached
  const found: CommitteeConfig[] = []
  for (const record of Object.values(document.committee.changes)) {
    const voters = readVoters(readText(record.voters))
    if (voters !== null && Number.isSafeInteger(record.term) && Number.isSafeInteger(record.seq)) found.push({ voters, term: record.term, seq: record.seq })
  }
  found.sort((a, b) => a.term - b.term || a.seq - b.seq)
  proposalCache.set(document.committee.changes, found)
  return found
}

function readVoters(text: string): NodeId[] | null {
  try {
    const value: unknown = JSON.parse(text)
    if (!Array.isArray(value) || value.length === 0 || value.length > maxVoters || !value.every((id) => typeof id === 'string')) return null
    return [...new Set(value as string[])].sort().map(asNodeId)
  } catch {
    return null
  }
}

const inForceCache = new WeakMap<Document, CommitteeConfig>()

/**
 * The committee in force: the latest committed proposal, else the genesis committee. `isCommitted`
 * defaults to the document's own commit knowledge (its markers); a peer passes what it knows sooner.
 */
export function committeeInForce(document: Document, isCommitted?: IsCommitted): CommitteeConfig {
  if (isCommitted === undefined) {
    const cached = inForceCache.get(document)
    if (cached !== undefined) return cached
  }
  const committed = isCommitted ?? ((stamp) => committedInDocument(document, stamp))
  let current = genesisCommittee(document)
  for (const proposal of proposals(document)) if (committed(proposal) && later(proposal, current)) current = proposal
  if (isCommitted === undefined) inForceCache.set(document, current)
  return current
}

/** The voters in force, sorted. */
export function committeeVoters(document: Document, isCommitted?: IsCommitted): NodeId[] {
  return committeeInForce(document, isCommitted).voters
}

/** The latest proposal later than the committee in force and not committed yet, or null. */
export function pendingCommittee(document: Document, isCommitted?: IsCommitted): CommitteeConfig | null {
  const committed = isCommitted ?? ((stamp) => committedInDocument(document, stamp))
  const current = committeeInForce(document, isCommitted)
  let pending: CommitteeConfig | null = null
  for (const proposal of proposals(document)) if (!committed(proposal) && later(proposal, current) && (pending === null || later(proposal, pending))) pending = proposal
  return pending
}

const namedCache = new WeakMap<object, Set<string>>()

/** Everyone the genesis or any proposal named a voter: the nodes trusted to write decisions (write-rules.ts). Never shrinks. */
export function everNamedVoters(document: Document): Set<string> {
  const cached = namedCache.get(document.committee)
  if (cached !== undefined) return cached
  const named = new Set<string>(genesisCommittee(document).voters)
  for (const proposal of proposals(document)) for (const voter of proposal.voters) named.add(voter)
  namedCache.set(document.committee, named)
  return named
}

/** The leader of `term` proposes `voters` as its decision `seq` (in that decision's change). */
export function writeCommitteeProposal(draft: ClusterDocument, voters: readonly NodeId[], term: number, seq: number): void {
  draft.committee.changes[stampKey(term, seq)] = { voters: new A.ImmutableString(JSON.stringify([...voters].sort())), term, seq }
}

/** A committee's stamp as messages carry it ("0.0" for the genesis committee). */
export function committeeStamp(config: { term: number; seq: number }): string {
  return stampKey(config.term, config.seq)
}

/** What a peer reads of the committee: the one in force and the pending proposal, cached per document version and commit knowledge. */
export class CommitteeView {
  readonly #isCommitted: IsCommitted
  readonly #knowledge: () => number
  #cache: { document: Document; knowledge: number; inForce: CommitteeConfig; pending: CommitteeConfig | null } | null = null

  /** `knowledge`: a number that changes whenever `isCommitted` may answer differently. */
  constructor(isCommitted: IsCommitted, knowledge: () => number) {
    this.#isCommitted = isCommitted
    this.#knowledge = knowledge
  }

  #read(document: Document): { inForce: CommitteeConfig; pending: CommitteeConfig | null } {
    const knowledge = this.#knowledge()
    if (this.#cache !== null && this.#cache.document === document && this.#cache.knowledge === knowledge) return this.#cache
    const inForce = committeeInForce(document, this.#isCommitted)
    const pending = pendingCommittee(document, this.#isCommitted)
    this.#cache = { document, knowledge, inForce, pending }
    return this.#cache
  }

  inForce(document: Document): CommitteeConfig { return this.#read(document).inForce }
  pending(document: Document): CommitteeConfig | null { return this.#read(document).pending }

  /** The committees a decision or an election needs majorities of: the one in force, and the pending one. */
  committees(document: Document): NodeId[][] {
    const { inForce, pending } = this.#read(document)
    return pending === null ? [inForce.voters] : [inForce.voters, pending.voters]
  }
}
