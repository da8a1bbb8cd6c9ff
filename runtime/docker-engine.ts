// The Docker engine a node talks to: which socket, and what the engine answering there offers
// (version, experimental features for checkpoints, data root, cgroup version). The Docker runtime
// and `fabric doctor` both ask it; no answer is a RuntimeUnavailableError the daemon can report.
import { request } from 'node:http'
import { createRequire } from 'node:module'
import type Docker from 'dockerode'
import { RuntimeUnavailableError } from './runtime.ts'

// dockerode loads on first use, not with the daemon: with its SSH transport (ssh2, which reserves a
// 16 MiB WebAssembly heap) it is about 30 MiB of resident memory a node without container jobs
// never needs. The engine probe below speaks plain HTTP for the same reason.
const require = createRequire(import.meta.url)

export const dockerEngineLimits = {
  /** One short engine call (ping, info, inspect). */
  callTimeoutMs: 10_000,
} as const

export type DockerEngineInfo =
  | {
      available: true
      endpoint: string
      version: string
      apiVersion: string
      /** `docker checkpoint` needs them (dockerd's "experimental": true). */
      experimental: boolean
      /** The engine's data folder: a restore puts CRIU images into a container's checkpoints/ there. */
      rootDir: string
      cgroupVersion: string
      cgroupDriver: string
    }
  | { available: false; endpoint: string; reason: string }

/** The engine's Unix socket: given, else DOCKER_HOST's unix:// path, else the standard one. */
export function dockerSocketPath(explicit?: string): string {
  if (explicit !== undefined && explicit !== '') return explicit
  const host = process.env.DOCKER_HOST
  if (host !== undefined && host.startsWith('unix://')) return host.slice('unix://'.length)
  return '/var/run/docker.sock'
}

export function connectDocker(socketPath: string): Docker {
  const Dockerode = require('dockerode') as typeof Docker
  return new Dockerode({ socketPath })
}

/** Rejects after `timeoutMs` with `what` in the message (dockerode's own timeout would also cut long waits and log streams). */
export function bounded<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} got no answer within ${timeoutMs} ms`)), timeoutMs)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** What the engine at `endpoint` offers: two GETs on its socket (no dockerode needed to ask). */
export async function probeDockerEngine(endpoint: string): Promise<DockerEngineInfo> {
  try {
    const ask = async () => [await getJson(endpoint, '/info'), await getJson(endpoint, '/version')] as const
    const [info, version] = await bounded(ask(), dockerEngineLimits.callTimeoutMs, `the Docker engine at ${endpoint}`)
    return {
      available: true,
      endpoint,
      version: String(version.Version ?? info.ServerVersion ?? 'unknown'),
      apiVersion: String(version.ApiVersion ?? 'unknown'),
      experimental: info.ExperimentalBuild === true,
      rootDir: String(info.DockerRootDir ?? '/var/lib/docker'),
      cgroupVersion: String(info.CgroupVersion ?? 'unknown'),
      cgroupDriver: String(info.CgroupDriver ?? 'unknown'),
    }
  } catch (error) {
    return { available: false, endpoint, reason: describeEngineError(error) }
  }
}

function getJson(socketPath: string, path: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const call = request({ socketPath, path, method: 'GET', headers: { host: 'docker' } }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('error', reject)
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        if (response.statusCode !== 200) return reject(new Error(`GET ${path}: HTTP ${response.statusCode} ${text.slice(0, 200)}`))
        try {
          resolve(JSON.parse(text) as Record<string, unknown>)
        } catch (error) {
          reject(new Error(`GET ${path}: not JSON (${(error as Error).message})`))
        }
      })
    })
    call.on('error', reject)
    call.end()
  })
}

export function unavailable(info: Extract<DockerEngineInfo, { available: false }>): RuntimeUnavailableError {
  return new RuntimeUnavailableError({ runtime: 'docker', endpoint: info.endpoint, reason: info.reason })
}

function describeEngineError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return 'the socket does not exist (is dockerd running? scripts/install-runtime-deps.sh starts it)'
  if (code === 'ECONNREFUSED') return 'nothing listens on the socket (dockerd stopped?)'
  if (code === 'EACCES') return 'permission denied on the socket (not root and not in the docker group)'
  return error instanceof Error ? error.message : String(error)
}
