// The runtime a daemon runs jobs in when it is given none: the process runtime in DATA/jobs, and the
// Docker runtime beside it when an engine answers (jobs naming an image go there; runtime-selector.ts
// chooses per job). Whether the engine answered is logged once at start.
import { DockerRuntime, ProcessRuntime } from '../runtime/index.ts'
import type { Clock } from './clock.ts'
import type { Logger } from './logger.ts'
import { RuntimeSelector } from './runtime-selector.ts'

/** What one non-follow logs request reads per stream. */
export const maxLogBytesPerRequest = 64 * 1024 * 1024

export interface DefaultRuntimeInit {
  dataDir: string
  /** 'off' never tries the Docker engine. */
  docker?: 'auto' | 'off'
  clock: Clock
  logger: Logger
}

/** The process runtime, and the Docker runtime when an engine answers (jobs naming an image go there). */
export async function defaultRuntime(init: DefaultRuntimeInit): Promise<RuntimeSelector> {
  const { logger, clock } = init
  const components = { logger: logger.child('runtime'), nowMs: () => clock.nowMs() }
  const processRuntime = new ProcessRuntime({ dataDir: init.dataDir, limits: { maxLogBytesPerCall: maxLogBytesPerRequest } }, components)
  let docker: DockerRuntime | null = null
  if (init.docker !== 'off') {
    const candidate = new DockerRuntime({ dataDir: init.dataDir }, { logger: logger.child('docker') })
    const engine = await candidate.engine()
    if (engine.available) docker = candidate
    else await candidate.close()
    logger.info('docker-engine', engine.available ? { available: true, version: engine.version } : { available: false, reason: engine.reason })
  }
  return new RuntimeSelector({ process: processRuntime, docker })
}
