// Run as its own short-lived process (`node node/machine-probe.ts DATA_DIR`) by machine-resources.ts:
// reads the machine's inventory with systeminformation and prints it as one JSON line. A process of
// its own because systeminformation is large (some 10 MiB of RSS once loaded, and an ES module
// cannot be unloaded): the daemon keeps only the numbers.
import { realpath } from 'node:fs/promises'
import { resolve, sep } from 'node:path'
import { cpu, fsSize, graphics, mem } from 'systeminformation'

const dataDir = await realpath(resolve(process.argv[2] ?? '.')).catch(() => resolve(process.argv[2] ?? '.'))
const [cpuData, memData, graphicsData, filesystems] = await Promise.all([cpu(), mem(), graphics(), fsSize()])
// The data directory's filesystem: the mount point that is the longest prefix of its path.
const contains = (mount: string): boolean => dataDir === mount || dataDir.startsWith(mount.endsWith(sep) ? mount : `${mount}${sep}`)
const filesystem = filesystems.filter((entry) => contains(entry.mount)).sort((a, b) => b.mount.length - a.mount.length)[0]
process.stdout.write(`${JSON.stringify({
  cpus: cpuData.cores,
  memoryTotalBytes: memData.total,
  memoryAvailableBytes: memData.available,
  graphics: graphicsData.controllers.map((controller) => ({ vendor: controller.vendor, model: controller.model, vramMiB: controller.vram ?? 0 })),
  disk: filesystem === undefined ? null : { mount: filesystem.mount, totalBytes: filesystem.size, availableBytes: filesystem.available },
})}\n`)
