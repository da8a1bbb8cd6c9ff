// `fabric doctor`: what this node can do, as text or JSON: CRIU and `criu check`, the Docker
// engine, cgroups, PID namespaces, GPUs, and what follows for each runtime. A report, not a gate:
// it exits 0 whatever it finds (the logic lives in runtime/node-capabilities.ts).
import type { Command } from 'commander'

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('Report what this node can run and checkpoint: CRIU (version, criu check), Docker engine, cgroups, PID namespaces, GPUs')
    .option('--json', 'print the report as JSON')
    .option('--docker-socket <path>', "the Docker engine's Unix socket (default: DOCKER_HOST or /var/run/docker.sock)")
    .option('--criu <path>', 'the CRIU binary (default: criu on PATH)')
    .action(async (flags: { json?: boolean; dockerSocket?: string; criu?: string }) => {
      const { probeNodeCapabilities, renderCapabilities } = await import('../../runtime/index.ts')
      const report = await probeNodeCapabilities({
        ...(flags.dockerSocket !== undefined ? { dockerSocket: flags.dockerSocket } : {}),
        ...(flags.criu !== undefined ? { criuPath: flags.criu } : {}),
      })
      console.log(flags.json === true ? JSON.stringify(report, null, 2) : renderCapabilities(report))
    })
}
