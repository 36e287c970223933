// The connection registry, after mox's `Connections`: which sockets are open per protocol and
// listener, closing them all at once on shutdown, and telling when none remain. Registering is
// a Map insert and one shared 'close' listener; nothing per connection on any long-lived signal.
// Each connection is counted in the program-wide metrics (src/program-metrics.ts): accepted at
// register, closed (with how, and how long it lasted) when it leaves: a few atomic adds.
import type { Duplex } from 'node:stream'
import type { Registry } from 'prom-client'
import { PrivsepError } from './errors.js'
import { LoggerSource, type Logger } from './log.js'
import { registerConnectionGauge, registerProgramMetrics } from './metrics.js'
import { CLOSED, closeReasons, ERROR, FORCED, now, programMetrics, UNREGISTERED, type CloseReason, type Series } from './program-metrics.js'

/** What can be registered: a net/tls socket, or any stream that emits 'close' when it ends. */
export type Connection = Duplex

export interface ConnectionRegistryOptions {
  /** The pino logger. Default: a pino logger named `privsep`, created on first log. */
  logger?: Logger
  /**
   * Once this signal aborts, every newly registered connection is closed at once (and the
   * event logged): nothing accepted late escapes the drain. One listener for the registry.
   */
  shutdown?: AbortSignal
  /**
   * The prom-client registry the gauge goes in, on the first register() (or registerMetrics()).
   * Default: prom-client's default registry. `false`: no gauge unless registerMetrics() is called.
   */
  registry?: Registry | false
  /** The gauge's name. Default `privsep_connections`. */
  metricName?: string
}

/** One { protocol, listener } pair: its child logger and its count at scrape time. */
class Group {
  readonly protocol: string
  readonly listener: string
  readonly #logs: LoggerSource
  #parent: Logger | undefined
  #log: Logger | undefined
  count = 0
  /** Where its connections are counted program-wide. */
  readonly series: Series

  constructor (protocol: string, listener: string, logs: LoggerSource) {
    this.protocol = protocol
    this.listener = listener
    this.#logs = logs
    this.series = programMetrics().series(protocol, listener)
  }

  get log (): Logger {
    const parent = this.#logs.logger
    if (this.#log === undefined || this.#parent !== parent) {
      this.#parent = parent
      this.#log = parent.child({ protocol: this.protocol, listener: this.listener })
    }
    return this.#log
  }
}

/** A registered connection: its group, when it was registered, and how it is being closed (-1: not by privsep). */
class Entry {
  constructor (public group: Group, public since: number, public reason = -1) {}
}

export class ConnectionRegistry {
  readonly #sockets = new Map<Connection, Entry>()
  readonly #groups = new Map<string, Map<string, Group>>()
  readonly #logs: LoggerSource
  readonly #onClose: (this: Connection, hadError?: unknown) => void
  #registry: Registry | false | undefined
  #metricName: string | undefined
  #metricsReady = false
  /** The `shutdown` option: once it aborted, new registrations are closed at once. */
  readonly #shutdown: AbortSignal | undefined
  /** Set by shutdown(): new registrations are closed at once. */
  #closing = false
  /** Set by shutdown(): sockets are being force-closed with this error. */
  #forceError: PrivsepError | undefined
  #idle: { promise: Promise<void>, resolve: () => void } | undefined

  /** `logs` is internal: a Lifecycle shares its logger (given or default) with its registry. */
  constructor (options: ConnectionRegistryOptions = {}, logs?: LoggerSource) {
    this.#logs = logs ?? new LoggerSource(options.logger)
    this.#registry = options.registry
    this.#metricName = options.metricName
    const registry = this // eslint-disable-line @typescript-eslint/no-this-alias
    // On 'close' the listener stays on the dead socket: removing it would only cost time.
    this.#onClose = function onClose (this: Connection, hadError?: unknown) { registry.#remove(this, hadError === true ? ERROR : CLOSED) }
    this.#shutdown = options.shutdown
  }

  /** The logger this registry logs to (the given one, or the default `privsep` logger). */
  get logger (): Logger {
    return this.#logs.logger
  }

  set logger (logger: Logger) {
    this.#logs.logger = logger
  }

  /** The child logger for a label pair: the registry's logger with `{ protocol, listener }`. */
  loggerFor (protocol: string, listener: string): Logger {
    return this.#group(protocol, listener).log
  }

  /** How many connections are registered. */
  get size (): number {
    return this.#sockets.size
  }

  /** True once shutdown started (the `shutdown` option aborted, or `shutdown()` was called). */
  get closing (): boolean {
    return this.#closing || this.#shutdown?.aborted === true
  }

  /**
   * Tracks `socket` under `protocol` (e.g. `smtp`) and `listener` (a name, e.g. `public`)
   * until it emits 'close' (or unregister()). Registered after shutdown started, it is closed
   * at once and the event logged.
   */
  register (socket: Connection, protocol: string, listener: string): void {
    if (!this.#metricsReady) this.#lazyMetrics()
    const group = this.#group(protocol, listener)
    let entry = this.#sockets.get(socket)
    if (entry === undefined) {
      entry = new Entry(group, now())
      this.#sockets.set(socket, entry)
      // A new entry (not a re-registration under other labels) needs the 'close' listener.
      socket.on('close', this.#onClose)
      group.series.accepted()
    } else if (entry.group !== group) {
      // Moved to other labels: it left the old series and joins the new one.
      entry.group.series.closed(UNREGISTERED, entry.since)
      entry.group = group
      entry.since = now()
      group.series.accepted()
    }
    if (this.closing) {
      group.log.warn('connection registered after shutdown started: closing it')
      entry.reason = FORCED
      this.#destroy(socket, this.#forceError ?? shutdownError('registered after shutdown started'))
    } else if (socket.closed) {
      // It emitted 'close' before it was registered: that listener will never run.
      process.nextTick(this.#onClose.bind(socket, false))
    }
  }

  /** Stops tracking `socket`. Idempotent. */
  unregister (socket: Connection): void {
    if (this.#remove(socket, UNREGISTERED)) socket.removeListener('close', this.#onClose)
  }

  /**
   * Says how privsep is closing `socket` (`idle`: an idle kept-alive connection closed at the
   * stop), for `privsep_connections_closed_total`'s `reason`. Nothing if it is not registered.
   */
  closingAs (socket: Connection, reason: CloseReason): void {
    const entry = this.#sockets.get(socket)
    if (entry !== undefined) entry.reason = closeReasons.indexOf(reason)
  }

  /** Forgets `socket`, counting it closed with `reason` unless privsep closed it; false if it was not registered. */
  #remove (socket: Connection, reason: number): boolean {
    const entry = this.#sockets.get(socket)
    if (entry === undefined) return false
    this.#sockets.delete(socket)
    entry.group.series.closed(entry.reason >= 0 ? entry.reason : reason, entry.since)
    if (this.#sockets.size === 0 && this.#idle !== undefined) {
      const idle = this.#idle
      this.#idle = undefined
      idle.resolve()
    }
    return true
  }

  /**
   * Closes every registered connection now, with an error whose `code` is
   * ERR_PRIVSEP_SHUTDOWN (given to the socket's 'error' listeners, if it has any), like mox's
   * immediate deadline. Connections registered afterwards are closed at once too.
   */
  shutdown (): void {
    this.#closing = true
    this.#forceError ??= shutdownError('closed by shutdown')
    const count = this.#sockets.size
    if (count > 0) {
      const open = this.counts().filter((c) => c.count > 0).map((c) => `${c.protocol}/${c.listener}=${c.count}`)
      this.logger.info({ connections: count, open }, 'closing open connections')
    }
    for (const [socket, entry] of [...this.#sockets]) {
      entry.reason = FORCED
      this.#destroy(socket, this.#forceError)
    }
  }

  /** Resolves when no registered connection remains (at once if none is). */
  async done (): Promise<void> {
    if (this.#sockets.size === 0) return
    if (this.#idle === undefined) {
      let resolve!: () => void
      const promise = new Promise<void>((resolve_) => { resolve = resolve_ })
      this.#idle = { promise, resolve }
    }
    await this.#idle.promise
  }

  /** Calls `fn` for every registered connection (a snapshot: `fn` may close them). */
  forEach (fn: (socket: Connection, protocol: string, listener: string) => void): void {
    for (const [socket, { group }] of [...this.#sockets]) fn(socket, group.protocol, group.listener)
  }

  /** Open connections per label pair, pairs seen once included (at 0). */
  counts (): Array<{ protocol: string, listener: string, count: number }> {
    const out: Array<{ protocol: string, listener: string, count: number }> = []
    this.countByLabels((protocol, listener, count) => out.push({ protocol, listener, count }))
    return out
  }

  /** Feeds the gauge at scrape time: one pass over the registered connections. */
  countByLabels (add: (protocol: string, listener: string, count: number) => void): void {
    for (const byListener of this.#groups.values()) for (const group of byListener.values()) group.count = 0
    for (const entry of this.#sockets.values()) entry.group.count++
    for (const byListener of this.#groups.values()) {
      for (const group of byListener.values()) add(group.protocol, group.listener, group.count)
    }
  }

  /**
   * Registers the open-connections gauge in `registry` (default: the one from the options,
   * else prom-client's default registry), and the program-wide families beside it
   * (src/metrics.ts). Registering twice in one registry reuses them.
   */
  registerMetrics (registry?: Registry, options: { name?: string } = {}): void {
    this.#metricsReady = true
    const target = registry ?? (this.#registry === false ? undefined : this.#registry)
    registerConnectionGauge(this, { registry: target, name: options.name ?? this.#metricName })
    registerProgramMetrics(target)
  }

  /**
   * Sets where the gauge goes when the first connection is registered (the `registry` and
   * `metricName` options); no effect once the gauge exists.
   */
  configureMetrics (options: { registry?: Registry | false, metricName?: string }): void {
    if (options.registry !== undefined) this.#registry = options.registry
    if (options.metricName !== undefined) this.#metricName = options.metricName
  }

  #lazyMetrics (): void {
    this.#metricsReady = true
    if (this.#registry !== false) this.registerMetrics()
  }

  #group (protocol: string, listener: string): Group {
    let byListener = this.#groups.get(protocol)
    if (byListener === undefined) {
      byListener = new Map()
      this.#groups.set(protocol, byListener)
    }
    let group = byListener.get(listener)
    if (group === undefined) {
      group = new Group(protocol, listener, this.#logs)
      byListener.set(listener, group)
    }
    return group
  }

  #destroy (socket: Connection, error: PrivsepError): void {
    // Without an 'error' listener the error would be thrown as uncaught: close it plainly.
    if (socket.listenerCount('error') > 0) socket.destroy(error)
    else socket.destroy()
  }
}

function shutdownError (why: string): PrivsepError {
  return new PrivsepError('ERR_PRIVSEP_SHUTDOWN', `connection ${why}: the server is shutting down`)
}
