// nvidia-smi's GPU list, parsed strictly: well-formed output becomes devices by index; anything we
// cannot read whole is refused with the line and what is wrong. The query itself runs against
// stand-in nvidia-smi scripts (this machine has no GPU): listed, failing, malformed, absent.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { nvidiaSmiArguments, nvidiaSmiLimits, parseNvidiaSmiGpus, queryNvidiaGpus } from './nvidia-smi.ts'

const uuid = (n: number): string => `GPU-${String(n).padStart(8, '0')}-1111-2222-3333-444444444444`

describe('parseNvidiaSmiGpus', () => {
  it('reads index, name, memory and UUID of each line, ordered by index, ignoring blank lines and CRLF', () => {
    const text = `1, NVIDIA A100-SXM4-80GB, 81920, ${uuid(1)}\r\n0, NVIDIA A100-SXM4-80GB, 81920, ${uuid(0)}\n\n`
    expect(parseNvidiaSmiGpus(text)).toEqual({
      ok: true,
      gpus: [
        { index: 0, name: 'NVIDIA A100-SXM4-80GB', memoryMiB: 81_920, uuid: uuid(0) },
        { index: 1, name: 'NVIDIA A100-SXM4-80GB', memoryMiB: 81_920, uuid: uuid(1) },
      ],
    })
    expect(parseNvidiaSmiGpus('')).toEqual({ ok: true, gpus: [] })
  })

  it('refuses the whole output when one line is malformed, naming the line and what is wrong', () => {
    const good = `0, Tesla T4, 15360, ${uuid(0)}`
    const refused = (line: string): string => {
      const parsed = parseNvidiaSmiGpus(`${good}\n${line}\n`)
      if (parsed.ok) throw new Error(`accepted ${JSON.stringify(line)}`)
      return parsed.problem
    }
    expect(refused(`1, Tesla T4, 15360`)).toMatch(/^nvidia-smi line 2 .*expected 4 fields .*got 3$/)
    expect(refused(`1, Tesla, T4, 15360, ${uuid(1)}`)).toMatch(/expected 4 fields .*got 5/)
    expect(refused(`x, Tesla T4, 15360, ${uuid(1)}`)).toMatch(/the index "x" is not a whole number/)
    expect(refused(`-1, Tesla T4, 15360, ${uuid(1)}`)).toMatch(/the index "-1"/)
    expect(refused(`01, Tesla T4, 15360, ${uuid(1)}`)).toMatch(/the index "01"/)
    expect(refused(`${nvidiaSmiLimits.maxGpus}, Tesla T4, 15360, ${uuid(1)}`)).toMatch(/below 64/)
    expect(refused(`0, Tesla T4, 15360, ${uuid(1)}`)).toMatch(/index 0 is listed twice/)
    expect(refused(`1, , 15360, ${uuid(1)}`)).toMatch(/the name is empty/)
    expect(refused(`1, Tesla T4, [N/A], ${uuid(1)}`)).toMatch(/memory\.total "\[N\/A\]" is not a positive number of MiB/)
    expect(refused(`1, Tesla T4, 15360 MiB, ${uuid(1)}`)).toMatch(/memory\.total "15360 MiB"/)
    expect(refused(`1, Tesla T4, 0, ${uuid(1)}`)).toMatch(/memory\.total "0"/)
    expect(refused('1, Tesla T4, 15360, not-a-uuid')).toMatch(/"not-a-uuid" is not a GPU UUID/)
    // An error message where the list should be (some drivers print it with exit code 0).
    expect(parseNvidiaSmiGpus('NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver.\n')).toMatchObject({ ok: false, problem: expect.stringMatching(/^nvidia-smi line 1 .*expected 4 fields/) })
  })

  it('refuses a list longer than any machine\'s', () => {
    const lines = Array.from({ length: nvidiaSmiLimits.maxGpus + 1 }, (_, index) => `${index}, T4, 15360, ${uuid(index)}`).join('\n')
    expect(parseNvidiaSmiGpus(lines)).toEqual({ ok: false, problem: `nvidia-smi listed ${nvidiaSmiLimits.maxGpus + 1} lines, at most ${nvidiaSmiLimits.maxGpus} GPUs expected` })
  })
})

describe('queryNvidiaGpus', () => {
  const dirs: string[] = []
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })
  /** A directory holding an `nvidia-smi` that runs `body` (sh) when asked our query, and fails otherwise. */
  const standIn = async (body: string): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'fabric-nvidia-smi-'))
    dirs.push(dir)
    const script = join(dir, 'nvidia-smi')
    await writeFile(script, `#!/bin/sh\nif [ "$1 $2" != "${nvidiaSmiArguments.join(' ')}" ]; then echo "unexpected query: $*" >&2; exit 2; fi\n${body}\n`)
    await chmod(script, 0o755)
    return dir
  }

  it('lists the GPUs a working nvidia-smi reports', async () => {
    const dir = await standIn(`printf '0, NVIDIA H100 80GB HBM3, 81559, ${uuid(0)}\\n1, NVIDIA H100 80GB HBM3, 81559, ${uuid(1)}\\n'`)
    expect(await queryNvidiaGpus(dir)).toEqual({
      kind: 'listed',
      nvidiaSmi: join(dir, 'nvidia-smi'),
      gpus: [
        { index: 0, name: 'NVIDIA H100 80GB HBM3', memoryMiB: 81_559, uuid: uuid(0) },
        { index: 1, name: 'NVIDIA H100 80GB HBM3', memoryMiB: 81_559, uuid: uuid(1) },
      ],
    })
  })

  it('reports malformed output and a failing nvidia-smi as problems, not devices', async () => {
    const malformed = await standIn("echo '0, H100, lots, nope'")
    expect(await queryNvidiaGpus(malformed)).toMatchObject({ kind: 'problem', problem: expect.stringMatching(/line 1 .*memory\.total "lots"/) })
    const failing = await standIn("echo 'No devices were found'; exit 6")
    expect(await queryNvidiaGpus(failing)).toMatchObject({ kind: 'problem', problem: 'nvidia-smi failed: No devices were found' })
  })

  it('says nvidia-smi is absent when no directory searched holds it', async () => {
    const listing = await queryNvidiaGpus(await mkdtemp(join(tmpdir(), 'fabric-no-nvidia-smi-')).then((dir) => (dirs.push(dir), dir)))
    // The fallback directories are searched too: a machine with the driver installed finds it there.
    if (listing.kind === 'absent') expect(listing.reason).toMatch(/nvidia-smi not found/)
    else expect(listing.kind === 'listed' || listing.kind === 'problem').toBe(true)
  })
})
