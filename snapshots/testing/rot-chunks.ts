// A holder whose disk rotted, for transfer tests: one bit flipped in the middle of every stored
// chunk, written into its pack files behind the store's back (the store must still serve them).
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { decodeChunkLocation, type ChunkLocation } from '../pack-files.ts'

/** Flips one bit of every chunk stored in the (closed) store at `directory`; returns how many. */
export async function rotEveryChunk(directory: string): Promise<number> {
  const raw = new Level<string, Uint8Array>(directory, { keyEncoding: 'utf8', valueEncoding: 'view' })
  const locations: ChunkLocation[] = []
  for await (const value of raw.values({ gte: 'c/', lt: 'c0' })) locations.push(decodeChunkLocation(value)!)
  await raw.close()
  for (const location of locations) {
    const pack = await open(join(directory, 'packs', `${location.pack}.pack`), 'r+')
    const byte = Buffer.alloc(1)
    const at = location.offset + (location.length >> 1)
    await pack.read(byte, 0, 1, at)
    byte[0]! ^= 0x01
    await pack.write(byte, 0, 1, at)
    await pack.close()
  }
  return locations.length
}
