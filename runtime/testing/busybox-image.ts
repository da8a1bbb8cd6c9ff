// The image Docker tests run: a root filesystem of busybox-static (from Debian, installed by
// scripts/install-runtime-deps.sh) turned into an image with the engine's import, as no registry is
// reachable. Built once per engine; about 2 MB.
import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type Docker from 'dockerode'
import { resolveExecutable } from '../isolation.ts'

export const busyboxImage = 'fabric-test/busybox:1'
const run = promisify(execFile)

export async function ensureBusyboxImage(docker: Docker): Promise<string> {
  try {
    await docker.getImage(busyboxImage).inspect()
    return busyboxImage
  } catch {
    // Not built yet.
  }
  const busybox = await resolveExecutable('busybox', '/bin:/usr/bin:/sbin:/usr/sbin', '/')
  if (busybox === undefined) throw new Error('busybox is not installed (scripts/install-runtime-deps.sh installs busybox-static)')
  const root = await mkdtemp(join(tmpdir(), 'fabric-busybox-'))
  try {
    const rootfs = join(root, 'rootfs')
    for (const folder of ['bin', 'tmp', 'proc', 'sys', 'dev', 'etc']) await mkdir(join(rootfs, folder), { recursive: true })
    await copyFile(busybox, join(rootfs, 'bin', 'busybox'))
    const { stdout } = await run(busybox, ['--list'])
    for (const applet of stdout.split('\n').filter((name) => name !== '' && name !== 'busybox')) await symlink('busybox', join(rootfs, 'bin', applet))
    const tarball = join(root, 'rootfs.tar')
    await run('tar', ['-C', rootfs, '-cf', tarball, '.'])
    const [repo, tag] = busyboxImage.split(':')
    const stream = (await docker.importImage(tarball, { repo, tag })) as NodeJS.ReadableStream
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (error: Error | null) => (error === null ? resolve() : reject(error))))
    await docker.getImage(busyboxImage).inspect()
    return busyboxImage
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}
