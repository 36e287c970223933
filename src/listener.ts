// What `listen` returns: an object `net.Server#listen` and `dgram.Socket#bind` accept as is.
import { PrivsepError } from './errors.js'

export type Network = 'tcp' | 'tcp4' | 'tcp6' | 'udp' | 'udp4' | 'udp6' | 'unix'
export const networks: readonly Network[] = ['tcp', 'tcp4', 'tcp6', 'udp', 'udp4', 'udp6', 'unix']

export interface ListenOptions {
  /** Listen backlog for stream sockets. Default 511, as Node's. */
  backlog?: number
  /**
   * Unix sockets only: the socket file's permissions, e.g. `0o660` (clients need write
   * permission). Default: as the process's umask leaves them.
   */
  mode?: number
  /**
   * Under systemd socket activation: take the passed socket of this name
   * (`FileDescriptorName=` in the .socket unit) as well as this address.
   */
  name?: string
}

/**
 * A socket made ready by privsep. On Unix it carries `fd`; Node adopts it. On Windows it
 * carries what Node binds itself: `port` and `host` (net) / `address` (dgram), or `path`.
 * In the root parent `fd` throws when read: the parent never serves.
 */
export class Listener {
  readonly network: Network
  /** The canonical address, e.g. `0.0.0.0:25`, `[::]:53`, or the unix socket path. */
  readonly addr: string
  declare readonly port?: number
  declare readonly host?: string
  declare readonly address?: string
  declare readonly path?: string
  declare readonly ipv6Only?: boolean
  readonly #fd: number | undefined

  constructor (network: Network, addr: string, fd: number | undefined) {
    this.network = network
    this.addr = addr
    this.#fd = fd
    if (fd !== undefined) return
    if (network === 'unix') {
      this.path = addr
      return
    }
    const colon = addr.lastIndexOf(':')
    const host = addr.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
    this.port = Number(addr.slice(colon + 1))
    this.host = host
    this.address = host
    this.ipv6Only = network === 'tcp6' || network === 'udp6'
  }

  get fd (): number | undefined {
    if (this.#fd === -1) {
      throw new PrivsepError('ERR_PRIVSEP_PARENT_ONLY',
        `the listener for ${this.network} ${this.addr} is kept for the unprivileged child: the root parent never serves it`)
    }
    return this.#fd
  }

  toString (): string {
    return `${this.network} ${this.addr}`
  }
}
