// The links a Docker restore puts in the engine's checkpoint folder: each reaches its image from
// wherever the folder is unpacked (containerd's own temporary folder, at any depth), not only
// where it was made.
import { cp, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { linkCheckpointImages, rootClimb, rootRelativeTarget } from './checkpoint-links.ts'

const roots: string[] = []
afterEach(async () => {
  for (const root of roots.splice(0)) await rm(root, { recursive: true, force: true })
})

describe('checkpoint image links', () => {
  it('mirror the images folder with relative links that still reach the images once the folder is copied elsewhere, deeper or shallower', async () => {
    const root = await mkdtemp(join(tmpdir(), 'fabric-links-'))
    roots.push(root)
    const images = join(root, 'restore', 'criu')
    await mkdir(join(images, 'sub'), { recursive: true })
    await writeFile(join(images, 'pages-1.img'), 'pages of the job')
    await writeFile(join(images, 'inventory.img'), 'inventory')
    await writeFile(join(images, 'sub', 'nested.img'), 'nested')
    const linked = join(root, 'engine', 'containers', 'c1', 'checkpoints', 'fabric-restore')
    await mkdir(join(root, 'engine', 'containers', 'c1', 'checkpoints'), { recursive: true })
    expect(await linkCheckpointImages(images, linked)).toEqual({ links: 3 })
    const target = await readlink(join(linked, 'pages-1.img'))
    expect(target.startsWith('../')).toBe(true)
    expect(target.endsWith(join(images, 'pages-1.img').slice(1))).toBe(true)
    // As containerd does: the folder unpacked, links as links, somewhere else.
    for (const elsewhere of [join(root, 'x'), join(root, 'a', 'b', 'c', 'd', 'e', 'f', 'g')]) {
      await cp(linked, elsewhere, { recursive: true, verbatimSymlinks: true })
      expect(await readFile(join(elsewhere, 'pages-1.img'), 'utf8')).toBe('pages of the job')
      expect(await readFile(join(elsewhere, 'inventory.img'), 'utf8')).toBe('inventory')
      expect(await readFile(join(elsewhere, 'sub', 'nested.img'), 'utf8')).toBe('nested')
    }
  })

  it('climb to the root first, and refuse a relative image path', () => {
    expect(rootRelativeTarget('/var/lib/x/pages-1.img')).toBe(`${'../'.repeat(rootClimb)}var/lib/x/pages-1.img`)
    expect(() => rootRelativeTarget('restore/criu/pages-1.img')).toThrow(/absolute path/)
  })

  it('refuse a target folder that exists (a restore never mixes two sets of images)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'fabric-links-'))
    roots.push(root)
    await mkdir(join(root, 'images'))
    await mkdir(join(root, 'taken'))
    await expect(linkCheckpointImages(join(root, 'images'), join(root, 'taken'))).rejects.toMatchObject({ code: 'EEXIST' })
  })
})
