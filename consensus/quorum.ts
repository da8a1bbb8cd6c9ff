// Majority rules. During a committee change both the old and the new committee must agree
// (joint majorities), so a change of one voter can never produce two disjoint quorums.
import type { BrokenVariant, NodeId } from './types.ts'

export function isMajority(agreeing: ReadonlySet<NodeId>, voters: readonly NodeId[], broken: BrokenVariant = 'none'): boolean {
  if (broken === 'no-quorum') return agreeing.size >= 1
  let count = 0
  for (const voter of voters) if (agreeing.has(voter)) count++
  return count * 2 > voters.length
}

export function isJointMajority(
  agreeing: ReadonlySet<NodeId>,
  committees: readonly (readonly NodeId[])[],
  broken: BrokenVariant = 'none',
): boolean {
  return committees.every((voters) => isMajority(agreeing, voters, broken))
}

/** The highest value a majority of voters has reached (values missing count as 0). */
export function majorityValue(values: ReadonlyMap<NodeId, number>, voters: readonly NodeId[], broken: BrokenVariant = 'none'): number {
  if (voters.length === 0) return 0
  const sorted = voters.map((voter) => values.get(voter) ?? 0).sort((a, b) => b - a)
  if (broken === 'no-quorum') return sorted[0] ?? 0
  return sorted[Math.floor(voters.length / 2)] ?? 0
}

/** Checks that a committee change moves exactly one voter and keeps 3, 5 or 7 voters (or passes through 4 or 6). */
export function validateCommitteeChange(current: readonly NodeId[], next: readonly NodeId[]): { ok: true } | { ok: false; reason: string } {
  const added = next.filter((id) => !current.includes(id))
  const removed = current.filter((id) => !next.includes(id))
  if (added.length + removed.length !== 1) return { ok: false, reason: `a committee change moves exactly one voter (this one adds ${added.length} and removes ${removed.length})` }
  if (next.length < 3 || next.length > 7) return { ok: false, reason: `a committee has 3 to 7 voters (this change leaves ${next.length})` }
  return { ok: true }
}
