// Graceful shutdown, after mox's lifecycle: `shutdown` aborts first (stop accepting, start no
// new work), `context` aborts after a grace period (abort work in flight), then every
// registered connection is closed, and once none remain the process exits. `Lifecycle` holds
// one process's shutdown; src/index.ts exports the process's instance.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Server } from 'node:net'
import type { Registry } from 'prom-client'
import { ConnectionRegistry } from './connections.js'
import { PrivsepError } from './errors.js'
import type { Listener } from './listener.js'
import { flushLogger, LoggerSource, type Logger } from './log.js'
import { serve, type ServeOptions } from './serve.js'
import { supervisingChild } from './monitor.js'
import { programMetrics } from './program-metrics.js'

export interface LifecycleOptions {
  /** The pino logger. Default: `pino({ name: 'privsep' })` writing synchronously to stdout, created on first log. */
  logger?: Logger
  /**
   * prom-client registry for the open-connections gauge, registered on the first connection.
   * Default: prom-client's default registry. `false`: no gauge unless `registerMetrics()`.
   */
  registry?: Registry | false
  /** Name of the gauge. Default `privsep_connections`. */
  metricName?: string
  /**
   * Milliseconds from `shutdown` to `context` (and to force-closing the connections left),
   * cut short when no connection remains. Default 1000.
   */
  graceMs?: number
  /**
   * Milliseconds from the first shutdown request to the drain. Meanwhile `readiness` answers
   * 503, so a load balancer or Kubernetes' readiness probe takes the process out of rotation,
   * and everything keeps serving; a second signal changes nothing. Set it to the probe's period
   * (README, "Kubernetes"). Default 0: the drain starts at once.
   */
  shutdownDelayMs?: number
  /** Milliseconds to wait for force-closed connections to report 'close'. Default 1000. */
  closeTimeoutMs?: number
  /** Exit the process when shutdown is over. Default true; false: await `startShutdown()`. */
  exit?: boolean
  /** Exit code after a shutdown in which every connection closed. Default 0. */
  exitCode?: number
  /** Called after the drain, before the logs are flushed and the process exits. */
  beforeExit?: (result: ShutdownResult) => void | Promise<void>
}

export interface ShutdownResult {
  /** What `startShutdown` was given (for a signal: its name, e.g. 'SIGTERM'). */
  reason: unknown
  /** True when a second signal (or `forceShutdown`) cut the drain short. */
  forced: boolean
  /** Connections still registered at the end (0 after a clean drain). */
  remaining: number
  /** The code the process exits (or, with `exit: false`, would exit) with. */
  exitCode: number
}

export interface HandleSignalsOptions {
  /** Signals that start the shutdown; a second one during shutdown forces the exit. Default SIGTERM, SIGINT. */
  signals?: readonly NodeJS.Signals[]
}

/** Exit code when connections were still open after `closeTimeoutMs`. */
export const exitCodeUnclean = 1

const defaults = { graceMs: 1000, closeTimeoutMs: 1000, exit: true, exitCode: 0, shutdownDelayMs: 0 }
const flushTimeoutMs = 2000
const forcedFlushTimeoutMs = 250
/** The same signal again within this time is one request delivered twice, not a second one. */
export const duplicateSignalMs = 500

export class Lifecycle {
  readonly #shutdown = new AbortController()
  readonly #context = new AbortController()
  readonly #logs: LoggerSource
  readonly #hooks = new Set<() => void>()
  #options: Required<Omit<LifecycleOptions, 'logger' | 'registry' | 'metricName' | 'beforeExit'>> & Pick<LifecycleOptions, 'beforeExit'>
  #stopping: Promise<ShutdownResult> | undefined
  #force: ((exitCode: number) => void) | undefined
  #forcedCode: number | undefined
  /** A shutdown was asked for: `readiness` answers 503 from then on. */
  #unready = false
  /** Within `shutdownDelayMs` of that request: serving on, signals change nothing. */
  #delaying = false

  /** The connection registry: closed on shutdown, its gauge labelled protocol and listener. */
  readonly connections: ConnectionRegistry

  constructor (options: LifecycleOptions = {}) {
    this.#logs = new LoggerSource(options.logger)
    this.#options = { ...defaults }
    this.connections = new ConnectionRegistry({ shutdown: this.#shutdown.signal }, this.#logs)
    this.configure(options)
  }

  /** Changes options (for this process's instance: call it before anything starts). */
  configure (options: LifecycleOptions): void {
    for (const key of ['graceMs', 'closeTimeoutMs', 'exitCode', 'shutdownDelayMs'] as const) {
      const value = options[key]
      if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
        throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `${key} must be a non-negative integer, not ${String(value)}`)
      }
    }
    const { logger, registry, metricName, ...rest } = options
    if (logger !== undefined) this.#logs.logger = logger
    this.connections.configureMetrics({ registry, metricName })
    for (const [key, value] of Object.entries(rest)) {
      if (value !== undefined) (this.#options as Record<string, unknown>)[key] = value
    }
  }

  /** Aborted first when shutdown starts: stop accepting, start no new operation. */
  get shutdown (): AbortSignal {
    return this.#shutdown.signal
  }

  /** Aborted `graceMs` after `shutdown` (or sooner, when no connection remains): abort work in flight. */
  get context (): AbortSignal {
    return this.#context.signal
  }

  /**
   * Writes out what the logger buffered (see `flushLogger`); undefined, at once, when no
   * logger was given or created: nothing to wait for.
   */
  flushLogs (): Promise<void> | undefined {
    return this.#logs.created ? flushLogger(this.#logs.logger, flushTimeoutMs) : undefined
  }

  /** False from the first shutdown request on (before the drain, during `shutdownDelayMs`). */
  get ready (): boolean {
    return !this.#unready
  }

  /**
   * An HTTP handler for a readiness endpoint (a Kubernetes `readinessProbe`, a load
   * balancer's health check): 200 while `ready`, 503 once a shutdown was asked for. Mount it
   * on the path you probe: `if (req.url === '/ready') return readiness(req, res)`.
   */
  readonly readiness = (req: IncomingMessage, res: ServerResponse): void => {
    const body = this.#unready ? 'shutting down\n' : 'ready\n'
    res.writeHead(this.#unready ? 503 : 200, { 'content-type': 'text/plain', 'content-length': body.length, 'cache-control': 'no-store' })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  /** The logger shutdown events go to. */
  get logger (): Logger {
    return this.#logs.logger
  }

  /** True once a logger was given or created (reading `logger` creates the default one). */
  get hasLogger (): boolean {
    return this.#logs.created
  }

  /**
   * Runs `hook` once when shutdown starts (at once if it already has). One entry in a set,
   * not one more 'abort' listener on `shutdown`. Returns a function that removes it.
   */
  onShutdown (hook: () => void): () => void {
    if (this.#shutdown.signal.aborted) {
      hook()
      return () => {}
    }
    this.#hooks.add(hook)
    return () => { this.#hooks.delete(hook) }
  }

  /** See `serve` in src/serve.ts: listens on `listener` and ties `server` to this lifecycle. */
  async serve<S extends Server> (server: S, listener: Listener, options: ServeOptions): Promise<S> {
    return await serve(this, server, listener, options)
  }

  /** Registers the open-connections gauge in `registry` (default: prom-client's default registry). */
  registerMetrics (registry?: Registry, options: { name?: string } = {}): void {
    this.connections.registerMetrics(registry, options)
  }

  /**
   * Starts the shutdown (idempotent: later calls return the same promise). With `exit`
   * (the default) the process exits when it is over; otherwise the promise resolves then.
   */
  async startShutdown (reason?: unknown): Promise<ShutdownResult> {
    this.#stopping ??= this.#run(reason)
    return await this.#stopping
  }

  /**
   * Cuts a running shutdown short: aborts `context`, closes every connection now and (with
   * `exit`) exits at once with `exitCode` (default 1) after a short log flush.
   */
  forceShutdown (exitCode = exitCodeUnclean): void {
    if (this.#stopping === undefined) void this.startShutdown('forced')
    this.#forcedCode ??= exitCode
    this.#force?.(exitCode)
  }

  /**
   * Makes `signals` (default SIGTERM and SIGINT) start the shutdown; a second one during the
   * shutdown forces the exit at once with 128 + the signal's number (130 for SIGINT, 143
   * for SIGTERM), unless it is the first signal again within `duplicateSignalMs` (one
   * request that reached the process twice). Returns a function that removes the handlers.
   */
  handleSignals (options: HandleSignalsOptions = {}): () => void {
    const signals = options.signals ?? ['SIGTERM', 'SIGINT']
    let first: { signal: NodeJS.Signals, at: number } | undefined
    const onSignal = (signal: NodeJS.Signals): void => {
      // A process waiting for the monitor it started (exit: false) passes signals on; the
      // child drains, and this process ends with it.
      if (supervisingChild()) return
      if (this.#stopping === undefined) {
        first = { signal, at: performance.now() }
        void this.startShutdown(signal)
        return
      }
      // Within the shutdown delay the process is on its way out already: one more signal
      // (Kubernetes' preStop, then its SIGTERM) neither hastens nor forces it.
      if (this.#delaying) return
      // systemd's default KillMode signals the monitor and the child at once, and the monitor
      // forwards its copy: the same signal again within moments is that one request.
      if (first?.signal === signal && performance.now() - first.at < duplicateSignalMs) return
      this.logger.warn({ signal }, 'second signal during shutdown: forcing exit')
      this.forceShutdown(128 + (process.getBuiltinModule('node:os').constants.signals[signal] ?? 0))
    }
    for (const signal of signals) process.on(signal, onSignal)
    return () => {
      for (const signal of signals) process.off(signal, onSignal)
    }
  }

  async #run (reason: unknown): Promise<ShutdownResult> {
    const log = this.logger
    const { graceMs, closeTimeoutMs } = this.#options
    const forced = new Promise<number>((resolve) => { this.#force = resolve })
    if (this.#forcedCode !== undefined) this.#force?.(this.#forcedCode)
    this.#unready = true
    const { shutdownDelayMs } = this.#options
    if (shutdownDelayMs > 0 && this.#forcedCode === undefined) {
      log.info({ reason: describe(reason), shutdownDelayMs }, 'shutdown requested: not ready, serving on until the drain starts')
      this.#delaying = true
      await race([forced], shutdownDelayMs)
      this.#delaying = false
    }
    log.info({ reason: describe(reason), connections: this.connections.size, graceMs }, 'shutdown started: no longer accepting')
    // The registry reads `shutdown`: from this abort on, late registrations are closed.
    const drainStart = performance.now()
    this.#shutdown.abort(abortReason('shutdown', reason))
    for (const hook of [...this.#hooks]) {
      try {
        hook()
      } catch (err) {
        log.error({ err }, 'shutdown hook failed')
      }
    }
    this.#hooks.clear()

    let forcedCode: number | undefined
    const force = forced.then((code) => { forcedCode = code })
    await race([this.connections.done(), force], graceMs)
    log.info({ connections: this.connections.size }, 'context aborted: cancelling work in flight')
    this.#context.abort(abortReason('context', reason))
    this.connections.shutdown()
    const drained = this.connections.size === 0 || forcedCode !== undefined
      ? this.connections.size === 0
      : await race([this.connections.done().then(() => true), force.then(() => false)], closeTimeoutMs, false)
    const remaining = this.connections.size
    // privsep_drain_duration_seconds: program-wide, so the next generation reports this drain.
    programMetrics().drained((performance.now() - drainStart) / 1000)
    const exitCode = forcedCode ?? (drained ? this.#options.exitCode : exitCodeUnclean)
    const result: ShutdownResult = { reason, forced: forcedCode !== undefined, remaining, exitCode }
    if (remaining === 0) log.info({ exitCode }, 'shutdown done: no connection left')
    else log.warn({ remaining, exitCode }, 'shutdown done with connections still open')

    if (this.#options.beforeExit !== undefined && forcedCode === undefined) {
      try {
        await this.#options.beforeExit(result)
      } catch (err) {
        log.error({ err }, 'beforeExit failed')
      }
    }
    if (this.#options.exit) {
      await flushLogger(log, forcedCode === undefined ? flushTimeoutMs : forcedFlushTimeoutMs)
      process.exit(exitCode)
    }
    return result
  }
}

/** Resolves with the first of `promises`, or with `timeoutValue` after `ms`. */
async function race<T> (promises: Array<Promise<T>>, ms: number, timeoutValue?: T): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<T | undefined>((resolve) => { timer = setTimeout(() => resolve(timeoutValue), ms) })
  try {
    return await Promise.race([...promises, timeout])
  } finally {
    clearTimeout(timer)
  }
}

function describe (reason: unknown): unknown {
  if (reason instanceof Error) return { message: reason.message, code: (reason as { code?: unknown }).code }
  return reason
}

function abortReason (which: 'shutdown' | 'context', reason: unknown): PrivsepError {
  const why = typeof reason === 'string' ? reason : reason instanceof Error ? reason.message : 'shutdown'
  const err = new PrivsepError('ERR_PRIVSEP_SHUTDOWN', `${which} aborted: the process is shutting down (${why})`)
  err.cause = reason
  return err
}
