// Splits a command line the way a POSIX shell splits words, for `fabric submit --cmd "..."`:
// single quotes keep everything, double quotes keep everything but \" \\ \$ \`, a backslash outside
// quotes escapes the next character. No expansion of any kind ($VAR, globs, ~) and no operators.
import { UserError } from './user-error.ts'

export function splitShellWords(line: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  let index = 0
  while (index < line.length) {
    const char = line[index]!
    if (char === "'") {
      const end = line.indexOf("'", index + 1)
      if (end < 0) throw new UserError(`--cmd: unterminated single quote in ${JSON.stringify(line)}`)
      word += line.slice(index + 1, end)
      inWord = true
      index = end + 1
    } else if (char === '"') {
      index++
      for (;;) {
        if (index >= line.length) throw new UserError(`--cmd: unterminated double quote in ${JSON.stringify(line)}`)
        const inner = line[index]!
        if (inner === '"') break
        if (inner === '\\' && index + 1 < line.length && '"\\$`'.includes(line[index + 1]!)) {
          word += line[index + 1]
          index += 2
          continue
        }
        word += inner
        index++
      }
      inWord = true
      index++
    } else if (char === '\\') {
      if (index + 1 >= line.length) throw new UserError(`--cmd: a lone backslash ends ${JSON.stringify(line)}`)
      word += line[index + 1]
      inWord = true
      index += 2
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
      index++
    } else {
      word += char
      inWord = true
      index++
    }
  }
  if (inWord) words.push(word)
  return words
}
