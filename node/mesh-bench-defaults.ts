// The mesh benchmark's default paced rate, without dependencies, so `fabric bench mesh --help` can
// show it without loading the benchmark (mesh-bench.ts re-exports it).

/**
 * The paced phase's default rate: on the 2-vCPU machine of bench/RESULTS.md, where five daemons share
 * two cores, the highest rate that met the latency goals with a margin in every run (its table has
 * the other rates; the mesh saturates at 25-30 per second in an open loop there).
 */
export const defaultPacedRatePerSec = 10
