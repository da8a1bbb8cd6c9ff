// consensus/: the committee's election, the replicated cluster document and the commit rule,
// as a pure state machine (Peer) that node/ and sim/ drive.
export { Peer, type PeerInit, type PersistedPeer, type Role } from './peer.ts'
export * from './types.ts'
export { concatBytes } from './bytes.ts'
export { maxElectionTimeoutMs, roundTripsPerElectionTimeout } from './election-timing.ts'
export { actorOf, splitActor, writerOf, genesisActor, isIncarnation } from './actors.ts'
export { committeeVoters, committeeInForce, pendingCommittee, everNamedVoters, proposals as committeeProposals, type CommitteeConfig } from './committee.ts'
export { submissionRefusal, type SubmissionFacts, type VerifySubmission } from './submission-proofs.ts'
export { roleOf, admittedPeers, inviteUsed, grantKey, splitGrantKey, grantIdPattern, type GrantFacts, type VerifyGrant, type AdmittedPeer } from './admission-grants.ts'
export { notAVoterRefusal } from './requests.ts'
export { SyncPenalties, syncPenaltyLimits } from './sync-penalties.ts'
export {
  createGenesis,
  loadDocument,
  formatVersion,
  DocumentFormatError,
  committedSeqOf,
  effectiveAssignment,
  assignmentsOf,
  ranThere,
  runsOf,
  forEachJob,
  forEachNode,
  isCommitted,
  isJobDone,
  jobRecord,
  shardOf,
  leaderSeqOf,
  readText,
  specCommandOf,
  replicaIdOf,
  replicaRecords,
  isDraining,
  latestSnapshot,
  snapshotsOf,
  type SnapshotView,
  roles,
  type AdmissionRecord,
  type Role as AdmissionRole,
  isCancelled,
  finalRun,
  failedAttempts,
  hasAttemptsLeft,
  readUsage,
  demandOf,
  runStateOf,
  type ClusterDocument,
  type Document,
  type JobRecord,
  type UsageRecord,
} from './cluster-document.ts'
export { attemptProgress, copyFailed, type AttemptProgress } from './retries.ts'
export { PlacementViews } from './placement-views.ts'
export { isMajority, isJointMajority, majorityValue, validateCommitteeChange } from './quorum.ts'
