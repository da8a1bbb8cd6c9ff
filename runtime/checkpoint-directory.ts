// The layout of a checkpoint directory, shared by both runtimes: CRIU's images (in `criu/`), a copy
// of the job's work folder (`work/`, which CRIU does not carry: the job's open files and working
// directory must exist on the target), and `fabric-checkpoint.json`, what a restore needs to know
// (the spec, where the job lived, how long it had run). snapshots/ packs the whole directory.
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import type { JobId } from '../consensus/index.ts'
import { CheckpointFailedError, InvalidRunSpecError, type RunSpec } from './runtime.ts'

export const checkpointLayout = {
  manifest: 'fabric-checkpoint.json',
  images: 'criu',
  work: 'work',
} as const

export const checkpointManifestFormat = 1

const specSchema = z.object({
  jobId: z.string().min(1),
  command: z.array(z.string()).min(1),
  args: z.array(z.string()).optional(),
  env: z.record(z.string(), z.string()).optional(),
  workingDir: z.string().optional(),
  timeoutMs: z.number().positive().optional(),
  resources: z.object({ cpuMillis: z.number().optional(), memoryMiB: z.number().optional(), gpuCount: z.number().optional() }).optional(),
  image: z.string().optional(),
})

const manifestSchema = z.object({
  format: z.literal(checkpointManifestFormat),
  runtime: z.enum(['process', 'docker']),
  jobId: z.string().min(1),
  spec: specSchema,
  /** The job's folder on the machine it was dumped on (the process runtime restores at that path). */
  jobDir: z.string().min(1),
  createdAtMs: z.number(),
  /** How long the job had run when dumped (a restored job's timeout counts on from there). */
  ranMs: z.number().min(0),
  criuVersion: z.string().optional(),
  /** Docker: the image the container ran (its id, checked on restore) and the engine's checkpoint name. */
  docker: z.object({ imageId: z.string(), checkpointName: z.string() }).optional(),
})

export type CheckpointManifest = Omit<z.infer<typeof manifestSchema>, 'spec' | 'jobId'> & { jobId: JobId; spec: RunSpec }

/** Creates `directory` for a checkpoint; refuses one that holds anything (two dumps must not mix). */
export async function prepareCheckpointDirectory(directory: string, facts: { jobId: JobId; runtime: string }): Promise<void> {
  await mkdir(directory, { recursive: true })
  const present = await readdir(directory)
  if (present.length > 0) {
    throw new CheckpointFailedError({ ...facts, operation: 'checkpoint', reason: `the checkpoint directory ${directory} is not empty (${present.slice(0, 3).join(', ')})` })
  }
}

export async function writeCheckpointManifest(directory: string, manifest: CheckpointManifest): Promise<void> {
  await writeFile(join(directory, checkpointLayout.manifest), `${JSON.stringify(manifest, null, 2)}\n`)
}

/** Reads and checks the manifest of a checkpoint made by `runtime` for `jobId`. */
export async function readCheckpointManifest(directory: string, facts: { jobId: JobId; runtime: 'process' | 'docker' }): Promise<CheckpointManifest> {
  const path = join(directory, checkpointLayout.manifest)
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(path, 'utf8'))
  } catch (error) {
    throw new CheckpointFailedError({ ...facts, operation: 'restore', reason: `no readable checkpoint manifest at ${path}: ${(error as Error).message}` })
  }
  const parsed = manifestSchema.safeParse(raw)
  if (!parsed.success) throw new CheckpointFailedError({ ...facts, operation: 'restore', reason: `${path} is not a checkpoint manifest: ${parsed.error.issues[0]?.message ?? 'invalid'}` })
  const manifest = parsed.data
  if (manifest.runtime !== facts.runtime) {
    throw new CheckpointFailedError({ ...facts, operation: 'restore', reason: `the checkpoint was made by the ${manifest.runtime} runtime; restore it with that runtime` })
  }
  if (manifest.jobId !== facts.jobId) throw new InvalidRunSpecError({ jobId: facts.jobId, field: 'jobId', reason: `does not match the checkpoint's job ${manifest.jobId}` })
  return manifest as unknown as CheckpointManifest
}

/** Copies a job's work folder (files, links, modes) into or out of a checkpoint. */
export async function copyWorkFolder(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, force: true })
}
