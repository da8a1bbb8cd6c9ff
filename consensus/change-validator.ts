// Screens a received Automerge sync message before any of it enters the document. Each new change is
// decoded, its writer read from its actor (actors.ts), every write resolved to a path and checked
// against who may write it (write-rules.ts), and what Automerge itself would choke on refused first
// (a sequence number reused or skipped, an unknown object, a predecessor that is not there: such
// changes make Automerge panic, which can leave its state half-applied). One forbidden change refuses
// the whole message. Messages of non-voters are screened; voters are trusted to follow the protocol
// and check everything they take, so only they relay others' changes and their messages enter as
// they come (document-replica.ts). A non-voter's change it did not write is held back (the sync
// protocol offers it again later); one of its own whose dependencies have not arrived waits here
// (bounded) to be judged with that sender's next message, and the missing dependencies are asked for
// (`needs`), as Automerge's own queue would.
import * as A from '@automerge/automerge'
import { splitActor } from './actors.ts'
import { splitGrantKey, type VerifyGrant } from './admission-grants.ts'
import { everNamedVoters } from './committee.ts'
import { readText, type Document } from './cluster-document.ts'
import type { NodeId } from './types.ts'
import { submissionRefusal, type CreatedJobRecord, type VerifySubmission } from './submission-proofs.ts'
import { writeRefusal, type ResolvedWrite, type Writer } from './write-rules.ts'

type Prop = string | number

export const changeLimits = {
  /** A text value in the document (the largest: a client's signed submit request, a spec of up to 256 KiB in it). */
  maxTextChars: 320 * 1024,
  /** Object paths remembered between messages (cleared when full; they are found again). */
  maxRememberedObjects: 200_000,
  /** A non-voter's changes waiting for their dependencies, per sender (more are dropped: offered again later). */
  maxWaitingPerPeer: 64,
  /** Senders with waiting changes (the oldest is forgotten first). */
  maxWaitingPeers: 1_024,
} as const

export type Screening =
  /** What may enter: `data` is the message itself, or the message without the changes held back. */
  | { kind: 'pass'; data: Uint8Array; accepted: number; heldBack: number }
  | { kind: 'refused'; reason: string }
  | { kind: 'undecodable'; reason: string }

function decodeSync(data: Uint8Array): A.DecodedSyncMessage | { kind: 'undecodable'; reason: string } {
  try {
    return A.decodeSyncMessage(data)
  } catch (error) {
    return { kind: 'undecodable', reason: `undecodable sync data (${(error as Error).message})` }
  }
}

/** A change of the message: its frontier in the document when judged; 'waiting' when kept to be judged once its dependencies arrive; 'held' when held back. */
type Judged = string[] | 'waiting' | 'held'

interface ScreenContext {
  document: Document
  handle: ReturnType<typeof A.getBackend>
  /** Changes of this message so far, and what became of them. */
  batch: Map<string, Judged>
  /** Per actor: the sequence number and last op counter of its latest change, for this message. */
  seqs: Map<string, { seq: number; maxOp: number }>
  /** Objects created by earlier changes of this message. */
  created: Map<string, Prop[]>
  /** (object, key) -> op ids written there by earlier changes of this message. */
  batchOps: Map<string, Set<string>>
  deciders: Set<string>
  admin: string
}

class Forbidden extends Error {
  override name = 'Forbidden'
}

const mapActions = new Set(['set', 'makeMap', 'del'])
const scalarTypes = new Set([undefined, 'int', 'uint', 'float64'])

export class ChangeValidator {
  readonly #self: NodeId
  readonly #ownActor: string
  readonly #verifyGrant: VerifyGrant | undefined
  readonly #verifySubmission: VerifySubmission | undefined
  readonly #paths = new Map<string, Prop[]>()
  /** Per actor: its latest change's sequence number and last op counter (built from the document once, then kept). */
  #seqs: Map<string, { seq: number; maxOp: number }> | null = null
  /** Per non-voter sender: its changes waiting for their dependencies, with those dependencies. */
  readonly #waiting = new Map<NodeId, { bytes: Uint8Array; hash: string; deps: string[] }[]>()
  readonly counters = { refused: 0, heldBack: 0 }

  constructor(init: { self: NodeId; actor: string; verifyGrant?: VerifyGrant | undefined; verifySubmission?: VerifySubmission | undefined }) {
    this.#self = init.self
    this.#ownActor = init.actor
    this.#verifyGrant = init.verifyGrant
    this.#verifySubmission = init.verifySubmission
  }

  /** A non-voter's message: it may carry only changes `from` wrote. */
  screen(document: Document, data: Uint8Array, from: NodeId): Screening {
    const decoded = decodeSync(data)
    if ('kind' in decoded) return decoded
    if (decoded.changes.length === 0 && !this.#waiting.has(from)) return { kind: 'pass', data, accepted: 0, heldBack: 0 }
    const handle = A.getBackend(document)
    const split = splitChunks(decoded.changes, handle)
    if (split instanceof Error) return { kind: 'undecodable', reason: split.message }
    const waited = this.#waiting.get(from) ?? []
    this.#waiting.delete(from)
    const chunks = [...waited.map((change) => change.bytes), ...split]
    const waiting: { bytes: Uint8Array; hash: string; deps: string[] }[] = []
    const known = this.#knownSeqs(document)
    const context: ScreenContext = { document, handle, batch: new Map(), seqs: new Map(), created: new Map(), batchOps: new Map(), deciders: everNamedVoters(document), admin: readText(document.admin) }
    const kept: Uint8Array[] = []
    let accepted = 0
    let heldBack = 0
    for (const bytes of chunks) {
      let change: A.DecodedChange
      try {
        change = A.decodeChange(bytes)
      } catch (error) {
        return { kind: 'undecodable', reason: `undecodable change (${(error as Error).message})` }
      }
      if (context.batch.has(change.hash)) continue
      if (handle.getChangeMetaByHash(change.hash) !== null) {
        kept.push(bytes) // already here: Automerge skips it
        continue
      }
      try {
        const judged = this.#judge(change, from, context, known)
        context.batch.set(change.hash, judged)
        if (judged === 'held' || judged === 'waiting') {
          if (judged === 'waiting' && waiting.length < changeLimits.maxWaitingPerPeer) waiting.push({ bytes, hash: change.hash, deps: change.deps })
          heldBack++
          continue
        }
        kept.push(bytes)
        accepted++
      } catch (error) {
        if (!(error instanceof Forbidden)) throw error
        this.counters.refused++
        return { kind: 'refused', reason: error.message }
      }
    }
    // The message passes: what it created and numbered is now known.
    for (const [id, path] of context.created) this.#remember(id, path)
    for (const [actor, seq] of context.seqs) known.set(actor, seq)
    this.counters.heldBack += heldBack
    if (waiting.length > 0) {
      if (this.#waiting.size >= changeLimits.maxWaitingPeers) this.#waiting.delete(this.#waiting.keys().next().value!)
      this.#waiting.set(from, waiting)
    }
    if (heldBack === 0 && waited.length === 0) return { kind: 'pass', data, accepted, heldBack }
    return { kind: 'pass', data: A.encodeSyncMessage({ ...decoded, changes: kept }), accepted, heldBack }
  }

  /** A message whose changes this node takes from no one but a voter: all are held back (its session goes on). */
  holdAll(data: Uint8Array): Screening {
    const decoded = decodeSync(data)
    if ('kind' in decoded) return decoded
    if (decoded.changes.length === 0) return { kind: 'pass', data, accepted: 0, heldBack: 0 }
    this.counters.heldBack += decoded.changes.length
    return { kind: 'pass', data: A.encodeSyncMessage({ ...decoded, changes: [] }), accepted: 0, heldBack: decoded.changes.length }
  }

  /** The changes `peer`'s waiting changes depend on that this document lacks: asked for in the next message to it. */
  needs(peer: NodeId, document: Document): string[] {
    const waiting = this.#waiting.get(peer)
    if (waiting === undefined) return []
    const handle = A.getBackend(document)
    const waitingHashes = new Set(waiting.map((change) => change.hash))
    const needed = new Set<string>()
    for (const change of waiting) for (const dep of change.deps) if (!waitingHashes.has(dep) && handle.getChangeMetaByHash(dep) === null) needed.add(dep)
    return [...needed]
  }

  /** Forget what `peer` left waiting (its session restarted: it offers them again). */
  forgetWaiting(peer: NodeId): void {
    this.#waiting.delete(peer)
  }

  #knownSeqs(document: Document): Map<string, { seq: number; maxOp: number }> {
    if (this.#seqs !== null) return this.#seqs
    this.#seqs = new Map()
    this.#noteChanges(A.getChangesMetaSince(document, []))
    return this.#seqs
  }

  /** A screened message was applied: the changes that entered since `headsBefore` (queued ones whose dependencies came, too) are now each actor's latest. */
  noteApplied(document: Document, headsBefore: A.Heads): void {
    if (this.#seqs !== null) this.#noteChanges(A.getChangesMetaSince(document, headsBefore))
  }

  #noteChanges(metas: readonly A.ChangeMetadata[]): void {
    for (const meta of metas) {
      const last = this.#seqs!.get(meta.actor)
      if (last === undefined || meta.seq > last.seq) this.#seqs!.set(meta.actor, { seq: meta.seq, maxOp: meta.maxOp })
    }
  }

  #remember(id: string, path: Prop[]): void {
    if (this.#paths.size >= changeLimits.maxRememberedObjects) this.#paths.clear()
    this.#paths.set(id, path)
  }

  /**
   * The change's frontier in the document (the heads its reads are checked at) when it may enter;
   * 'waiting' or 'held' when it cannot be judged yet; throws Forbidden when it must not enter.
   */
  #judge(change: A.DecodedChange, from: NodeId, context: ScreenContext, known: Map<string, { seq: number; maxOp: number }>): Judged {
    const owner = splitActor(change.actor)
    if (owner === null) throw new Forbidden(`a change by actor ${change.actor.slice(0, 80)}, which names no node (the genesis is written once)`)
    if (change.actor === this.#ownActor) throw new Forbidden(`a change written as this node (${this.#self}), which it did not write`)
    if (owner.node !== from) return 'held'
    // Its dependencies: in the document, or judged earlier in this message.
    const frontier = new Set<string>()
    for (const dep of change.deps) {
      if (context.handle.getChangeMetaByHash(dep) !== null) {
        frontier.add(dep)
        continue
      }
      const judged = context.batch.get(dep)
      if (judged === undefined || typeof judged === 'string') return 'waiting'
      for (const head of judged) frontier.add(head)
    }
    // Sequence numbers: each actor's next, never one reused (a fork) or skipped (Automerge panics).
    const last = context.seqs.get(change.actor) ?? known.get(change.actor) ?? { seq: 0, maxOp: 0 }
    if (change.seq !== last.seq + 1) {
      throw new Forbidden(change.seq <= last.seq
        ? `${owner.node} wrote two different changes numbered ${change.seq} (actor ${change.actor}): a fork of its history`
        : `${owner.node}'s change numbered ${change.seq} follows its change ${last.seq}: the ones between are not among its dependencies`)
    }
    if (!(change.startOp > last.maxOp)) throw new Forbidden(`${owner.node}'s change ${change.seq} reuses operation numbers (starts at ${change.startOp}, its previous change ended at ${last.maxOp})`)
    const writer: Writer = { node: owner.node, actor: change.actor, decider: context.deciders.has(owner.node) }
    this.#checkOps(change, writer, [...frontier], context)
    context.seqs.set(change.actor, { seq: change.seq, maxOp: change.startOp + change.ops.length - 1 })
    return [...frontier]
  }

  #checkOps(change: A.DecodedChange, writer: Writer, frontier: string[], context: ScreenContext): void {
    /** Objects this change creates, and the scalar fields it sets in them. */
    const createdHere = new Map<string, { path: Prop[]; fields: Map<string, unknown> }>()
    /** Replay keys a non-voter writes: only beside the submission whose request they guard. */
    const requestKeys: { key: string; value: unknown }[] = []
    for (let index = 0; index < change.ops.length; index++) {
      const op = change.ops[index]!
      const opId = `${change.startOp + index}@${change.actor}`
      if (!mapActions.has(op.action)) throw new Forbidden(`${writer.node} wrote a ${op.action} operation: the cluster document holds maps and values only`)
      if (typeof op.key !== 'string' || op.key.length === 0) throw new Forbidden(`${writer.node} wrote into a list position: the cluster document holds maps only`)
      if (op.action === 'set') checkValue(op, writer)
      const objectPath = this.#pathOf(op.obj, createdHere, frontier, context)
      if (objectPath === null) throw new Forbidden(`${writer.node} wrote into object ${op.obj.slice(0, 80)}, which is not in the document`)
      const action = op.action as ResolvedWrite['action']
      const refusal = writeRefusal({ action, objectPath, key: op.key, objectIsNew: createdHere.has(op.obj) }, writer)
      if (refusal !== null) throw new Forbidden(refusal)
      if (objectPath[0] === 'requests' && action === 'set' && !writer.decider) requestKeys.push({ key: op.key, value: op.value })
      this.#checkPredecessors(op, opId, frontier, context, createdHere.has(op.obj) || context.created.has(op.obj), writer)
      const slot = `${op.obj}\u0000${op.key}`
      let ops = context.batchOps.get(slot)
      if (ops === undefined) context.batchOps.set(slot, (ops = new Set()))
      ops.add(opId)
      if (action === 'makeMap') {
        const path = [...objectPath, op.key]
        createdHere.set(opId, { path, fields: new Map() })
        if (isNewRecordSlot(path)) this.#checkNotThere(op.obj, op.key, frontier, context, path, writer)
      } else if (action === 'set') {
        createdHere.get(op.obj)?.fields.set(op.key, op.value)
      }
    }
    this.#checkRecords(createdHere, writer, context)
    // A mesh with an admin key: a non-voter creates a job only with its client's signed request (an open mesh lets anyone act).
    if (!writer.decider && context.admin !== '') {
      const jobs: CreatedJobRecord[] = []
      for (const { path, fields } of createdHere.values()) if (path[0] === 'jobs' && path.length === 3) jobs.push({ id: String(path[2]), fields })
      const refusal = submissionRefusal(writer.node, jobs, requestKeys, context.document, context.admin, this.#verifySubmission)
      if (refusal !== null) throw new Forbidden(refusal)
    }
    for (const [id, { path }] of createdHere) context.created.set(id, path)
  }

  #pathOf(obj: string, createdHere: Map<string, { path: Prop[] }>, frontier: string[], context: ScreenContext): Prop[] | null {
    if (obj === '_root') return []
    const here = createdHere.get(obj)?.path ?? context.created.get(obj) ?? this.#paths.get(obj)
    if (here !== undefined) return here
    let info: { path?: Prop[] } | undefined
    try {
      info = context.handle.objInfo(obj)
      if (info.path === undefined && frontier.length > 0) info = context.handle.objInfo(obj, frontier)
    } catch {
      return null
    }
    if (info?.path === undefined) return null
    this.#remember(obj, info.path)
    return info.path
  }

  /** Every operation an op overwrites must be one written at that key before it (else Automerge panics). */
  #checkPredecessors(op: A.DecodedChange['ops'][number], opId: string, frontier: string[], context: ScreenContext, objectIsBatchNew: boolean, writer: Writer): void {
    if (op.pred.length === 0) return
    const counter = Number(opId.slice(0, opId.indexOf('@')))
    const inBatch = context.batchOps.get(`${op.obj}\u0000${op.key}`)
    let visible: Set<string> | null = null
    for (const pred of op.pred) {
      const predCounter = Number(pred.slice(0, pred.indexOf('@')))
      if (!(predCounter < counter)) throw new Forbidden(`${writer.node} overwrote a later operation (${pred}) with ${opId}`)
      if (inBatch?.has(pred) === true) continue
      if (visible === null) {
        visible = new Set()
        if (!objectIsBatchNew && frontier.length > 0) {
          for (const value of context.handle.getAll(op.obj, op.key, frontier) as unknown[][]) visible.add(String(value[0] === 'map' ? value[1] : value[2]))
        }
      }
      if (!visible.has(pred)) throw new Forbidden(`${writer.node} overwrote operation ${pred.slice(0, 80)} at ${op.key.slice(0, 80)}, which is not there`)
    }
  }

  /** A new job record or invite use may not replace one its writer could see. */
  #checkNotThere(obj: string, key: string, frontier: string[], context: ScreenContext, path: Prop[], writer: Writer): void {
    if (frontier.length === 0 || context.created.has(obj)) return
    let existing: unknown
    try {
      existing = context.handle.getWithType(obj, key, frontier)
    } catch {
      existing = null
    }
    if (existing !== null && existing !== undefined) throw new Forbidden(`${writer.node} replaced ${path.join('.')}, which exists`)
  }

  /** Checks the records the change creates whole: a job's origin, an attempt's node, an admission's grant and the invite it uses. */
  #checkRecords(createdHere: Map<string, { path: Prop[]; fields: Map<string, unknown> }>, writer: Writer, context: ScreenContext): void {
    const invitesUsed = new Map<string, string>()
    const invitesRecorded = new Map<string, unknown>()
    for (const { path, fields } of createdHere.values()) {
      const [section] = path
      if (section === 'jobs' && path.length === 3) {
        if (fields.get('origin') !== writer.node) throw new Forbidden(`${writer.node} submitted ${path.join('.')} naming ${String(fields.get('origin'))} as its origin`)
      } else if (section === 'jobs' && path.length === 5 && path[3] === 'attempts') {
        if (fields.get('node') !== writer.node) throw new Forbidden(`${writer.node} recorded a failed attempt of ${String(path[2])} on ${String(fields.get('node'))}`)
      } else if (section === 'admitted' && path.length === 2) {
        const use = this.#checkGrant(String(path[1]), fields, writer, context)
        if (use !== null) invitesUsed.set(use.nonce, use.peer)
      } else if (section === 'invites' && path.length === 2) {
        invitesRecorded.set(String(path[1]), fields.get('peer'))
      }
    }
    for (const [nonce, peer] of invitesUsed) {
      if (invitesRecorded.get(nonce) !== peer) throw new Forbidden(`${writer.node} admitted ${peer} with invite ${nonce} without recording its use`)
    }
    for (const nonce of invitesRecorded.keys()) {
      if (!invitesUsed.has(nonce)) throw new Forbidden(`${writer.node} recorded the use of invite ${nonce} without admitting its holder`)
    }
  }

  /** Checks an admission record against the grant inside it; returns the invite it uses, if any. */
  #checkGrant(key: string, fields: Map<string, unknown>, writer: Writer, context: ScreenContext): { nonce: string; peer: string } | null {
    if (context.admin === '') throw new Forbidden(`${writer.node} wrote an admission record (${key.slice(0, 200)}), but this mesh has no admin key to grant one`)
    const grant = fields.get('grant')
    const facts = typeof grant === 'string' && this.#verifyGrant !== undefined ? this.#verifyGrant(grant, context.admin) : null
    if (facts === null) throw new Forbidden(`${writer.node} wrote an admission record (${key.slice(0, 200)}) without a grant the admin key signed`)
    const split = splitGrantKey(key)
    const peer = split?.peer ?? ''
    if (split === null || split.id !== facts.id || (facts.peer !== null && facts.peer !== peer)) throw new Forbidden(`${writer.node} used a grant for ${facts.peer ?? 'one peer'} (${facts.id}) to admit ${peer || key.slice(0, 200)}`)
    if (fields.get('role') !== facts.role || fields.get('atMs') !== facts.atMs || fields.get('by') !== writer.node) throw new Forbidden(`${writer.node}'s admission record of ${peer} does not say what its grant says (role ${facts.role})`)
    return facts.nonce === null ? null : { nonce: facts.nonce, peer }
  }
}

/** Automerge's storage chunks: magic, 4-byte checksum, type byte, length (LEB128), then the data. */
const chunkMagic = [0x85, 0x6f, 0x4a, 0x83]
const documentChunkType = 0
const chunkTypeOffset = 8

/**
 * The chunks of a sync message's change list, one per element: Automerge's v2 messages carry all of
 * them concatenated in one entry, and may carry the sender's whole document as one chunk (when that
 * is smaller than the changes the receiver lacks). A document's changes are judged one by one like
 * any others: it is replaced by the changes it holds that this document lacks.
 */
function splitChunks(entries: Uint8Array[], handle: ReturnType<typeof A.getBackend>): Uint8Array[] | Error {
  const chunks: Uint8Array[] = []
  for (const entry of entries) {
    let offset = 0
    while (offset < entry.length) {
      if (entry.length - offset < chunkTypeOffset + 2 || chunkMagic.some((byte, index) => entry[offset + index] !== byte)) return new Error('a sync message carries bytes that are not an Automerge chunk')
      let length = 0
      let cursor = offset + chunkTypeOffset + 1
      for (let shift = 0; ; shift += 7) {
        const byte = entry[cursor++]
        if (byte === undefined || shift > 28) return new Error('a sync message carries a chunk with an unreadable length')
        length += (byte & 0x7f) * 2 ** shift
        if ((byte & 0x80) === 0) break
      }
      const end = cursor + length
      if (end > entry.length) return new Error('a sync message carries a truncated chunk')
      const chunk = entry.subarray(offset, end)
      offset = end
      if (chunk[chunkTypeOffset] !== documentChunkType) {
        chunks.push(chunk)
        continue
      }
      let sent: A.Doc<unknown> | null = null
      try {
        sent = A.load(chunk)
        chunks.push(...handle.getChangesAdded(A.getBackend(sent))) // what the sent document has and this one lacks
      } catch (error) {
        return new Error(`undecodable document in a sync message (${(error as Error).message})`)
      } finally {
        if (sent !== null) A.free(sent)
      }
    }
  }
  return chunks
}

/** Keys where a change creates a record nobody may overwrite: a job (a new submission), an invite's use. */
function isNewRecordSlot(path: readonly Prop[]): boolean {
  return (path[0] === 'jobs' && path.length === 3) || (path[0] === 'invites' && path.length === 2)
}

function checkValue(op: A.DecodedChange['ops'][number], writer: Writer): void {
  if (!scalarTypes.has(op.datatype)) throw new Forbidden(`${writer.node} wrote a ${String(op.datatype)} value: the cluster document holds text, numbers, booleans and null`)
  const value = op.value
  if (typeof value === 'number' && !Number.isFinite(value)) throw new Forbidden(`${writer.node} wrote ${value} at ${op.key.slice(0, 80)}`)
  if (typeof value === 'string' && value.length > changeLimits.maxTextChars) throw new Forbidden(`${writer.node} wrote ${value.length} characters at ${op.key.slice(0, 80)}, over ${changeLimits.maxTextChars}`)
}
