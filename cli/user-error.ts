// An error the user can fix (bad flag, bad file): printed as a message and exit code 1,
// kept apart from bugs, which exit 2 with a stack.
export class UserError extends Error {
  override name = 'UserError'
  readonly hint: string | undefined
  /** The process's exit status (1 unless a service manager must tell this refusal apart). */
  readonly exitCode: number
  constructor(message: string, hint?: string, exitCode = 1) {
    super(message)
    this.hint = hint
    this.exitCode = exitCode
  }
}

/**
 * sysexits' EX_CONFIG: a daemon that cannot start until its operator changes its configuration
 * (no mesh to join, an invite needed). deploy/fabric-shuttle.service names it in
 * RestartPreventExitStatus, so systemd does not restart it in a loop.
 */
export const configurationExitCode = 78
