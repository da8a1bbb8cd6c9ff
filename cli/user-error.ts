// An error the user can fix (bad flag, bad file): printed as a message and exit code 1,
// kept apart from bugs, which exit 2 with a stack.
export class UserError extends Error {
  override name = 'UserError'
  readonly hint: string | undefined
  constructor(message: string, hint?: string) {
    super(message)
    this.hint = hint
  }
}
