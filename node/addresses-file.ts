// DATA/addresses.json: where the daemon of a data directory listens, so a CLI on the same machine
// finds it with no flag. Written atomically when the daemon is ready, removed when it stops cleanly
// (a daemon killed with SIGKILL leaves it behind; the pid in it tells a reader whether it is stale).
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'

export const addressesFileName = 'addresses.json'
const maxAddressesFileBytes = 64 * 1024

const addressesSchema = z.object({
  peerId: z.string().min(1).max(128),
  /** The daemon's mesh (genesis SHA-256): a local CLI signs its requests for it. Absent from files of older daemons. */
  meshId: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  addresses: z.array(z.string().min(1).max(1_024)).min(1).max(64),
  pid: z.number().int().positive(),
  writtenAtMs: z.number(),
})

export type DaemonAddresses = z.infer<typeof addressesSchema>

export class AddressesFileError extends Error {
  override name = 'AddressesFileError'
  readonly path: string
  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`)
    this.path = path
  }
}

export async function writeAddressesFile(dataDir: string, addresses: DaemonAddresses): Promise<void> {
  const path = join(dataDir, addressesFileName)
  const temporary = `${path}.tmp-${process.pid}`
  await writeFile(temporary, `${JSON.stringify(addresses, null, 2)}\n`, { mode: 0o600 })
  await rename(temporary, path)
}

/** The addresses a daemon wrote, or an AddressesFileError saying why there are none. */
export async function readAddressesFile(dataDir: string): Promise<DaemonAddresses> {
  const path = join(dataDir, addressesFileName)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new AddressesFileError(path, 'no daemon has written its addresses here (is `fabric node start` running on this data directory?)')
    throw new AddressesFileError(path, (error as Error).message)
  }
  if (text.length > maxAddressesFileBytes) throw new AddressesFileError(path, `${text.length} bytes is too large`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new AddressesFileError(path, `not valid JSON (${(error as Error).message})`)
  }
  const parsed = addressesSchema.safeParse(value)
  if (!parsed.success) throw new AddressesFileError(path, `unexpected content (${parsed.error.issues[0]?.message ?? 'invalid'})`)
  return parsed.data
}

/** Removes the file if it is still ours (a newer daemon on the same directory may have replaced it). */
export async function removeAddressesFile(dataDir: string, pid: number): Promise<void> {
  try {
    const current = await readAddressesFile(dataDir)
    if (current.pid === pid) await rm(join(dataDir, addressesFileName), { force: true })
  } catch {
    // Nothing to remove.
  }
}
