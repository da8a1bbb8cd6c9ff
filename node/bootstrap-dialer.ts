// Bootstrap: a daemon dials the peers its --bootstrap addresses name, and again every
// bootstrapRetryMs those not connected, so daemons may start in any order. Past its bootstrap peers,
// peer-discovery.ts keeps it connected to the rest of the admitted mesh.
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from './logger.ts'

export const maxBootstrapAddresses = 64
/** How often bootstrap peers not connected are dialed again (start order does not matter). */
export const bootstrapRetryMs = 1_000

export interface BootstrapDialerInit {
  libp2p: Libp2p
  /** Multiaddrs with /p2p/<id>; past maxBootstrapAddresses, ignored. */
  addresses: readonly string[]
  logger: Logger
  /** Dials only while the daemon runs. */
  running(): boolean
}

export class BootstrapDialer {
  readonly #init: BootstrapDialerInit
  #timer: NodeJS.Timeout | null = null

  constructor(init: BootstrapDialerInit) {
    this.#init = init
  }

  /** Dials every bootstrap peer not connected now, and again after bootstrapRetryMs. */
  dial(): void {
    const { libp2p, logger } = this.#init
    if (!this.#init.running()) return
    const targets = this.#init.addresses.slice(0, maxBootstrapAddresses)
    let pending = 0
    for (const text of targets) {
      let address
      try {
        address = multiaddr(text)
      } catch (error) {
        logger.warn('bootstrap-address-invalid', { address: text, error })
        continue
      }
      const peer = address.getComponents().find((component) => component.name === 'p2p')?.value
      if (peer !== undefined && libp2p.getConnections().some((connection) => connection.remotePeer.toString() === peer)) continue
      pending++
      libp2p.dial(address, { signal: AbortSignal.timeout(bootstrapRetryMs * 2) }).then(
        () => logger.info('bootstrap-connected', { address: text }),
        (error: unknown) => logger.debug('bootstrap-dial-failed', { address: text, error }),
      )
    }
    if (pending > 0 || targets.length > 0) this.#timer = setTimeout(() => this.dial(), bootstrapRetryMs)
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }
}
