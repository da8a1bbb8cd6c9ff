// Proves --cmd splits like a POSIX shell without expanding anything, and refuses unbalanced quotes.
import { describe, expect, it } from 'vitest'
import { shellQuoted } from '../node/job-views.ts'
import { splitShellWords } from './shell-words.ts'
import { UserError } from './user-error.ts'

describe('splitShellWords', () => {
  it('splits on blanks and keeps quoted text whole', () => {
    expect(splitShellWords(`sh -c 'echo hello; sleep 1; echo done'`)).toEqual(['sh', '-c', 'echo hello; sleep 1; echo done'])
    expect(splitShellWords(`printf "%s\\n" "a \\"b\\"" c\\ d ''`)).toEqual(['printf', '%s\\n', 'a "b"', 'c d', ''])
    expect(splitShellWords('echo $HOME ~ *')).toEqual(['echo', '$HOME', '~', '*'])
    expect(splitShellWords('  ')).toEqual([])
  })

  it('refuses unterminated quotes and a trailing backslash', () => {
    expect(() => splitShellWords(`echo 'a`)).toThrow(UserError)
    expect(() => splitShellWords(`echo "a`)).toThrow(/unterminated double quote/)
    expect(() => splitShellWords('echo \\')).toThrow(/backslash/)
  })

  it('takes back what `fabric job` shows of a command (its words quoted for a shell)', () => {
    const commands = [['sh', '-c', 'echo hello; sleep 1; echo done'], ['printf', "it's", '', 'a b', '$HOME', '*', 'plain-word/1.0'], ["'", '\\', '"q"']]
    for (const words of commands) expect(splitShellWords(shellQuoted(words))).toEqual(words)
    expect(shellQuoted(['sh', '-c', 'echo hello; sleep 1'])).toBe("sh -c 'echo hello; sleep 1'")
    expect(shellQuoted(['python', 'train.py', '--lr=0.1'])).toBe('python train.py --lr=0.1')
  })
})
