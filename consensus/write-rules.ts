// Who may write what in the cluster document (the trust model in ARCHITECTURE.md): a node writes only
// its own entries (its node record, its runs and snapshots, its request counter, the jobs it takes);
// decisions, the committee, commit markers, drains, cancels and moves only a node some committee named
// a voter (voters are trusted to follow the protocol; non-voters pass such requests to one); admission
// records only with the admin key's signature inside (admission-grants.ts); the genesis keys no one.
// Each rule reads a written key's path and the change that writes it, never the clock or the
// receiver's state, so every peer reaches the same verdict on the same change.
import { shardOf } from './cluster-document.ts'

type Prop = string | number

/** A write as the validator resolved it: the key written, and the path of the object it is in. */
export interface ResolvedWrite {
  action: 'set' | 'makeMap' | 'del'
  /** Path of the object written into ([] for the document's root). */
  objectPath: readonly Prop[]
  key: string
  /** The object written into was created by this same change (a new record being filled in). */
  objectIsNew: boolean
}

export interface Writer {
  /** The node the change's actor names. */
  node: string
  /** The change's actor (the node's incarnation). */
  actor: string
  /** Some committee (genesis or a proposal) named this node a voter. */
  decider: boolean
}

/** Null when the write is allowed, else why not (for the refusal's message). */
export function writeRefusal(write: ResolvedWrite, writer: Writer): string | null {
  const path = [...write.objectPath, write.key]
  const where = path.join('.')
  const [section, second, third] = path
  const decider = (): string | null => (writer.decider ? null : `only a voter may write ${where}`)
  const owned = (owner: Prop | undefined): string | null => (owner === writer.node ? null : `${writer.node} may not write ${where}: it is ${String(owner)}'s entry`)
  // A record is written whole in the change that creates it: its fields never change afterwards.
  const newRecordOnly = (): string | null => (write.objectIsNew ? null : `${where} is part of a record written once, when it is created`)
  switch (section) {
    case 'committee':
      if (second === 'changes' && path.length >= 3) return decider()
      return `${where} is part of the genesis committee: no one writes it`
    case 'leaderLog':
    case 'commits':
    case 'ratified':
    case 'draining':
      return path.length >= 2 ? decider() : `${where}: no one replaces a whole map`
    case 'origins':
      return path.length === 2 && write.action === 'set' && second === writer.actor ? null : `${writer.node} may write only its own request counter (origins.${writer.actor}), not ${where}`
    case 'nodes':
      if (path.length < 3 || second !== shardOf(String(third))) return `${where} is not a node record in its shard`
      if (path.length === 3 && write.action === 'del') return `no one deletes the node record ${where}`
      return owned(third)
    case 'admitted':
      if (path.length === 2) return write.action === 'makeMap' ? null : `an admission record is created whole, never ${write.action === 'del' ? 'deleted' : 'overwritten'} (${where})`
      return newRecordOnly()
    case 'invites':
      if (path.length === 2) return write.action === 'makeMap' ? null : `an invite's use is recorded once (${where})`
      return newRecordOnly()
    case 'requests':
      if (path.length !== 3 || second !== shardOf(String(third))) return `${where} is not a request key in its shard`
      return write.action === 'del' ? decider() : write.action === 'set' ? null : `${where} holds a time, not a map`
    case 'jobs':
      return jobWriteRefusal(path, write, writer, { decider, owned, newRecordOnly })
    default:
      return `${where}: the document's top-level keys are written by the genesis only`
  }
}

/** The sub-maps of a job record and who writes their entries (keyed by term, by node, or by attempt). */
const jobSubmaps = {
  assignments: 'decider',
  unplaceable: 'decider',
  runs: 'own',
  snapshots: 'own',
  attempts: 'new-record',
  cancelled: 'own-decider',
  migrate: 'own-decider',
} as const

function jobWriteRefusal(
  path: readonly Prop[],
  write: ResolvedWrite,
  writer: Writer,
  rules: { decider: () => string | null; owned: (owner: Prop | undefined) => string | null; newRecordOnly: () => string | null },
): string | null {
  const where = path.join('.')
  const [, shard, jobId, field, entry] = path
  if (path.length < 3 || shard !== shardOf(String(jobId))) return `${where} is not a job record in its shard`
  if (path.length === 3) {
    if (write.action === 'del') return rules.decider() // the leader drops an archived job
    return write.action === 'makeMap' ? null : `${where} must be a job record` // anyone may submit (write-rules' job checks follow)
  }
  if (path.length === 4) return rules.newRecordOnly()
  const kind = jobSubmaps[field as keyof typeof jobSubmaps]
  if (kind === undefined) return `${where}: a job record's ${String(field)} is a value, not a map`
  switch (kind) {
    case 'decider':
      return rules.decider()
    case 'own':
      return rules.owned(entry)
    case 'own-decider':
      return rules.owned(entry) ?? rules.decider()
    case 'new-record':
      return path.length === 5 ? (write.action === 'makeMap' ? null : `${where} must be an attempt record`) : rules.newRecordOnly()
  }
}
