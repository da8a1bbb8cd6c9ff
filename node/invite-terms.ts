// What an invite may grant and how large and long-lived it may be: constants without dependencies,
// so the CLI can name them in its help without loading the token code (invite-token.ts re-exports them).

/** Roles an invite may grant ('revoked' is never invited). */
export const invitableRoles = ['node', 'admin', 'submitter', 'viewer'] as const
export type InvitableRole = (typeof invitableRoles)[number]

export const inviteLimits = {
  /** A whole token; a few bootstrap addresses make it some hundreds of characters. */
  maxTokenChars: 4_096,
  maxBootstrapAddresses: 8,
  maxAddressChars: 512,
  /** An invite outliving this is refused when made (a lost token stays dangerous only so long). */
  maxTtlMs: 30 * 24 * 60 * 60 * 1_000,
  nonceBytes: 16,
} as const
