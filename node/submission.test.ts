// Proves the two contact points between a job spec and the core's job record: submissionFromSpec
// keeps the argv whole (quoting survives the record's text field) and refuses what nothing carries
// yet with a reason; decodeCommand reads that text back, and plain text as whitespace-split words.
import { describe, expect, it } from 'vitest'
import { asJobId } from '../consensus/index.ts'
import { parseJobSpec } from '../placement/index.ts'
import { decodeCommand, encodeCommand } from './job-launch.ts'
import { newJobId, submissionFromSpec } from './submission.ts'

const spec = (text: string) => {
  const parsed = parseJobSpec(text)
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors))
  return parsed.spec
}

describe('submissionFromSpec', () => {
  it('carries name, demand and the argv with its quoting; the process decides the duration', () => {
    const made = submissionFromSpec(spec(`name: hello\ncommand: [sh, -c]\nargs: ["echo 'a  b'; exit 3"]\nresources: {cpu: 250m, memory: 64Mi}\n`), asJobId('hello-1'))
    expect(made).toEqual({ ok: true, submission: { id: 'hello-1', name: 'hello', demand: { cpuMillis: 250, memoryMiB: 64 }, durationMs: 0, command: encodeCommand(['sh', '-c', "echo 'a  b'; exit 3"]) } })
    if (!made.ok) return
    expect(decodeCommand(made.submission.command)).toEqual({ ok: true, value: ['sh', '-c', "echo 'a  b'; exit 3"] })
  })

  it('refuses what the core and runtime cannot honour yet, naming each', () => {
    const made = submissionFromSpec(spec('name: web\nimage: nginx\nreplicas: 3\nenv: {A: b}\nresources: {cpu: 1, memory: 1Gi, gpu: {count: 1}}\n'), asJobId('web-1'))
    expect(made.ok).toBe(false)
    if (made.ok) return
    for (const part of ['image "nginx" without a command', 'replicas 3', 'GPUs', 'env']) expect(made.reason).toContain(part)
  })

  it('makes job ids from the name that the runtime accepts as folder names', () => {
    const id = newJobId('hello-web')
    expect(id).toMatch(/^hello-web-[0-9a-f]{12}$/)
    expect(newJobId('hello-web')).not.toBe(id)
  })
})

describe('decodeCommand', () => {
  it('reads text that is not a JSON argv as whitespace-split words, and refuses an empty command', () => {
    expect(decodeCommand('  sleep   5 ')).toEqual({ ok: true, value: ['sleep', '5'] })
    expect(decodeCommand('[not json')).toEqual({ ok: true, value: ['[not', 'json'] })
    expect(decodeCommand('   ')).toMatchObject({ ok: false, reason: 'the job has no command' })
    expect(decodeCommand('[]')).toMatchObject({ ok: false })
  })
})
