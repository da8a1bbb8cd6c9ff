// node/: the Shuttle daemon. Adapters that carry the consensus core's effects to the world
// (libp2p streams and gossipsub, a level store, the system clock); no protocol rule lives here.
export { Shuttle, type ShuttleInit, type ShuttleComponents, type ShuttleStatus, maxInboxLength, bootstrapRetryMs } from './shuttle.ts'
export { loadOrCreateIdentity, IdentityFileError, identityFileName, type NodeIdentity } from './identity.ts'
export { ConsensusStore, GenesisMismatchError, MissingGenesisError, storeDirectoryName } from './store.ts'
export { ConsensusTransport, consensusProtocol, defaultConsensusTransportLimits, type ConsensusTransportLimits } from './consensus-transport.ts'
export { CapacityGossipChannel, capacityTopic } from './capacity-gossip.ts'
export { systemClock, systemRandom, type Clock } from './clock.ts'
export { jsonLogger, silentLogger, isLogLevel, type Logger, type LogLevel } from './logger.ts'
export { localOffer, type LocalOfferInit } from './local-offer.ts'
export * from './wire.ts'
