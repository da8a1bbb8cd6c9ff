// Proves the contact points between a job spec and the core: submissionFromSpec carries the whole
// spec and refuses what this daemon cannot honour yet, naming each; runSpecFor turns the record's
// spec into what the process runtime runs (argv with its quoting, env, timeout, the replica's share).
import { describe, expect, it } from 'vitest'
import { Peer, asNodeId, asTerm, createGenesis, defaultPeerTiming, jobRecord } from '../consensus/index.ts'
import { parseJobSpec } from '../placement/index.ts'
import { offer } from '../placement/testing.ts'
import { runSpecFor } from './job-launch.ts'
import { newJobId, submissionFromSpec } from './submission.ts'

const spec = (text: string) => {
  const parsed = parseJobSpec(text)
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors))
  return parsed.spec
}

describe('submissionFromSpec', () => {
  it('carries the whole spec; the process decides the duration', () => {
    const parsed = spec(`name: hello\ncommand: [sh, -c]\nargs: ["echo 'a  b'; exit 3"]\nresources: {cpu: 250m, memory: 64Mi}\nreplicas: 2\n`)
    expect(submissionFromSpec(parsed, newJobId('hello'))).toMatchObject({ ok: true, submission: { spec: parsed, durationMs: 0 } })
  })

  it('refuses what this daemon cannot honour yet, naming it', () => {
    const made = submissionFromSpec(spec('name: web\nimage: nginx\nresources: {cpu: 1, memory: 1Gi}\n'), newJobId('web'))
    expect(made.ok).toBe(false)
    if (made.ok) return
    expect(made.reason).toContain('image "nginx" without a command')
  })

  it('carries retries to the core, which records the attempts a replica may take', () => {
    const made = submissionFromSpec(spec('name: flaky\ncommand: [sh, -c, "exit 1"]\nretries: 2\nresources: {cpu: 250m, memory: 64Mi}\n'), newJobId('flaky'))
    if (!made.ok) throw new Error(made.reason)
    expect(made.submission.spec.retries).toBe(2)
    const nodeId = asNodeId('12D3KooWretries')
    const peer = new Peer({ config: { ...defaultPeerTiming, nodeId }, attributes: { id: nodeId, offer: offer(nodeId) }, random: { next: () => 0.5 }, persisted: Peer.fresh(createGenesis({ voters: [nodeId] })), nowMs: 0, incarnation: '01' })
    peer.step({ kind: 'submit', nowMs: 1, requestId: 'r', job: made.submission })
    expect(jobRecord(peer.document, made.submission.id)?.maxAttempts).toBe(3)
  })

  it('sends a job naming an image only to nodes with a Docker engine', () => {
    const made = submissionFromSpec(spec('name: counter\nimage: fabric-test/busybox\ncommand: [sh, -c, "echo 1"]\nresources: {cpu: 1, memory: 64Mi}\n'), newJobId('counter'))
    expect(made).toMatchObject({ ok: true, submission: { spec: { constraints: { labels: { 'runtime.docker': 'yes' } } } } })
  })

  it('makes job ids from the name that the runtime accepts as folder names', () => {
    const id = newJobId('hello-web')
    expect(id).toMatch(/^hello-web-[0-9a-f]{12}$/)
    expect(newJobId('hello-web')).not.toBe(id)
  })
})

describe('runSpecFor', () => {
  it("runs the record's argv with its quoting, env and timeout, with the replica's resources", () => {
    const nodeId = asNodeId('12D3KooWlaunch')
    const peer = new Peer({ config: { ...defaultPeerTiming, nodeId }, attributes: { id: nodeId, offer: offer(nodeId) }, random: { next: () => 0.5 }, persisted: Peer.fresh(createGenesis({ voters: [nodeId] })), nowMs: 0, incarnation: '01' })
    const parsed = spec(`name: hello\ncommand: [sh, -c]\nargs: ["echo 'a  b'; exit 3"]\nenv: {GREETING: hi}\ntimeout: 30s\nresources: {cpu: 250m, memory: 64Mi}\n`)
    const made = submissionFromSpec(parsed, newJobId('hello'))
    if (!made.ok) throw new Error(made.reason)
    peer.step({ kind: 'submit', nowMs: 1, requestId: 'r', job: made.submission })
    const plan = runSpecFor({ kind: 'start-job', jobId: made.submission.id, demand: { cpuMillis: 250, memoryMiB: 64, diskMiB: 0, gpuCount: 0 }, durationMs: 0, term: asTerm(1), seq: 1, restoreFrom: null }, peer.document)
    expect(plan).toEqual({ ok: true, spec: { jobId: made.submission.id, command: ['sh', '-c', "echo 'a  b'; exit 3"], env: { GREETING: 'hi' }, timeoutMs: 30_000, resources: { cpuMillis: 250, memoryMiB: 64 } } })
  })
})
