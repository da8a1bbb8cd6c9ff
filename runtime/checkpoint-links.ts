// A Docker restore hands CRIU's images to the engine through the new container's checkpoints/
// folder, which the engine tars into containerd's content store and containerd unpacks into a
// temporary folder for runc: ~100 MB of pages carried three times, most of `docker start
// --checkpoint`. Symbolic links instead of copies travel as links through that round trip, so CRIU
// reads the pages where the snapshot was written out. Two things shape the link:
// - it must not depend on where containerd unpacks (a temporary folder of its own), so it is
//   relative and climbs to the root first: `..` at the root stays at the root;
// - CRIU opens some images after entering the container's root, where an absolute link would
//   resolve inside the container's filesystem; a relative one is walked from the images' folder
//   (outside that root) and climbs to the host's root.
import { mkdir, readdir, symlink } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'

/** More `..` than any folder containerd could unpack into is deep. */
export const rootClimb = 48

/** A relative link target that reaches `absolutePath` from any folder at most `rootClimb` deep. */
export function rootRelativeTarget(absolutePath: string): string {
  if (!isAbsolute(absolutePath)) throw new Error(`a checkpoint image link needs an absolute path, got "${absolutePath}"`)
  return `${'../'.repeat(rootClimb)}${absolutePath.replace(/^\/+/, '')}`
}

/** Makes `to` (which must not exist) mirror `from`'s tree: folders as folders, every file as a root-relative link to it. */
export async function linkCheckpointImages(from: string, to: string): Promise<{ links: number }> {
  await mkdir(to)
  let links = 0
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.isDirectory()) links += (await linkCheckpointImages(join(from, entry.name), join(to, entry.name))).links
    else {
      await symlink(rootRelativeTarget(join(from, entry.name)), join(to, entry.name))
      links += 1
    }
  }
  return { links }
}
