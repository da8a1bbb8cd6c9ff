// Proves --cmd splits like a POSIX shell without expanding anything, and refuses unbalanced quotes.
import { describe, expect, it } from 'vitest'
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
})
