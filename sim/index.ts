// sim/: the deterministic network simulator that runs the real consensus core under chaos.
export { World, nodeCapacity } from './world.ts'
export { Checker, type Violation } from './checker.ts'
export { runSeed, summarize, percentile, speedupOf, type SeedResult, type SimReport } from './report.ts'
export { allFaults, defaultSimOptions, parseDurationMs, parseFaults, type FaultKind, type SimOptions } from './options.ts'
export { SeededRandom } from './random.ts'
export { runSeeds } from './parallel.ts'
export { GossipMesh, coverageTimeMs } from './gossip-mesh.ts'
export { SimNetwork } from './network.ts'
