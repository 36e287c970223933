// privsep's public API. The functions are bound to this process's `Privsep`; construct
// your own `Privsep` for tests or embedding.
//
// Start-up cost matters: a privsep program loads this package twice, as root and as the user.
// So the build bundles src/ into one ES module (one file to resolve, read and compile), and
// the sources take Node's builtins from process.getBuiltinModule rather than `import`: an ES
// import of a builtin costs about 0.4 ms per module per process. docs/BENCHMARKS.md measures it.
import { Privsep } from './privsep.js'
import { Lifecycle } from './lifecycle.js'
import { reloadSecureContext as reload, watchSecureContext as watch, type SecureContextFiles, type SecureServer } from './tls.js'
import type { ConnectionRegistry } from './connections.js'

export { Privsep } from './privsep.js'
export { Listener, type ListenOptions, type Network } from './listener.js'
export { PrivsepError, type PrivsepErrorCode } from './errors.js'
export { type SandboxOptions, type SandboxState } from './sandbox.js'
export { forwardedSignals, type BrokerPolicy, type ChildExit, type ForkExecOptions } from './monitor.js'

/** This process's privsep state: it has one set of passed descriptors and one parent. */
export const privsep = new Privsep()

export const listen = privsep.listen.bind(privsep)
export const openPrivileged = privsep.openPrivileged.bind(privsep)
export const restorePassedFiles = privsep.restorePassedFiles.bind(privsep)
export const cleanupPassedFiles = privsep.cleanupPassedFiles.bind(privsep)
export const requestFile = privsep.requestFile.bind(privsep)
export const requestListener = privsep.requestListener.bind(privsep)
export const ready = privsep.ready.bind(privsep)
export const upgrade = privsep.upgrade.bind(privsep)
/** Sends `STATUS=text` to systemd (through the monitor in a privsep child); see `ready`. */
export const notifyStatus = async (text: string): Promise<void> => { await privsep.notify(`STATUS=${text}`) }
export const forkExecUnprivileged = privsep.forkExecUnprivileged.bind(privsep)

/** Turns filesImmediate on or off for this process (see `Privsep#filesImmediate`). */
export function setFilesImmediate (on: boolean): void {
  privsep.filesImmediate = on
}

// The lifecycle (graceful shutdown, connection registry, metrics), bound to this process's
// `Lifecycle`: importing installs no signal handler and creates no metric.
export { Lifecycle, exitCodeUnclean, duplicateSignalMs, type LifecycleOptions, type ShutdownResult, type HandleSignalsOptions } from './lifecycle.js'
export { ConnectionRegistry, type Connection, type ConnectionRegistryOptions } from './connections.js'
export { defaultMetricName, registerProgramMetrics, type MetricsOptions } from './metrics.js'
export { ProgramMetrics, programMetrics, closeReasons, durationBuckets, maxSeries, regionSize, type CloseReason } from './program-metrics.js'
export { type ServeOptions } from './serve.js'
export { type Logger } from './log.js'
export const lifecycle = new Lifecycle()
// Before the root process becomes the monitor: what the lifecycle logged must be written.
privsep.beforeHandOff = () => lifecycle.flushLogs()
// What a user needs to know at start goes to the lifecycle's logger when the program has one,
// else one line on stderr (creating pino's default logger here would change its stdout).
privsep.say = (level, bindings, message) => {
  if (lifecycle.hasLogger) lifecycle.logger[level](bindings, message)
  else stderrLine(`privsep: ${message}\n`)
}

/**
 * `line` on stderr. On Linux, while fd 2 is in blocking mode, written to it directly: the first
 * use of process.stderr builds its stream, about 1.5 ms in the root process and as much in the
 * child (docs/BENCHMARKS.md). Blocking mode says no stream of this process holds unwritten data
 * for it: Node's stream over a pipe or socket puts it in non-blocking mode and queues what the
 * pipe does not take; over a file or terminal it writes synchronously. So the order is kept.
 * Otherwise, and for what fd 2 did not take, process.stderr, as before.
 */
function stderrLine (line: string): void {
  const bytes = Buffer.from(line)
  let written = 0
  if (process.platform === 'linux') {
    const fs = process.getBuiltinModule('node:fs')
    try {
      if (blocking(fs, 2)) written = fs.writeSync(2, bytes)
    } catch {}
  }
  if (written < bytes.length) process.stderr.write(bytes.subarray(written))
}

/** Whether `fd` is in blocking mode, as /proc/self/fdinfo says (its `flags:` line, octal). */
function blocking (fs: typeof import('node:fs'), fd: number): boolean {
  const info = fs.openSync(`/proc/self/fdinfo/${fd}`, 'r')
  try {
    const buffer = Buffer.alloc(512)
    const text = buffer.toString('latin1', 0, fs.readSync(info, buffer, 0, buffer.length, 0))
    const at = text.indexOf('\nflags:')
    return at !== -1 && (parseInt(text.slice(at + 7), 8) & fs.constants.O_NONBLOCK) === 0
  } finally {
    fs.closeSync(info)
  }
}

// systemd hears STOPPING=1 when the process's shutdown starts (nothing without systemd).
lifecycle.onShutdown(() => { void privsep.notify('STOPPING=1').catch(() => {}) })
export const shutdown: AbortSignal = lifecycle.shutdown
export const context: AbortSignal = lifecycle.context
export const connections: ConnectionRegistry = lifecycle.connections
export const startShutdown: Lifecycle['startShutdown'] = lifecycle.startShutdown.bind(lifecycle)
export const forceShutdown: Lifecycle['forceShutdown'] = lifecycle.forceShutdown.bind(lifecycle)
export const handleSignals: Lifecycle['handleSignals'] = lifecycle.handleSignals.bind(lifecycle)
export const onShutdown: Lifecycle['onShutdown'] = lifecycle.onShutdown.bind(lifecycle)
export const serve: Lifecycle['serve'] = lifecycle.serve.bind(lifecycle)
export const registerMetrics: Lifecycle['registerMetrics'] = lifecycle.registerMetrics.bind(lifecycle)
/** A readiness endpoint's handler: 200, then 503 from the first shutdown request on (see `shutdownDelayMs`). */
export const readiness: Lifecycle['readiness'] = lifecycle.readiness
export const configureLifecycle: Lifecycle['configure'] = lifecycle.configure.bind(lifecycle)

// Key renewal, with this process's broker and the lifecycle's logger.
export { type SecureContextFiles, type SecureServer } from './tls.js'
/** Reads `files` again (through the broker) and swaps them into `server` if they make a valid context. */
export const reloadSecureContext = async (server: SecureServer, files: SecureContextFiles): Promise<{ serial: string }> =>
  await reload(privsep, server, files)
/** Reloads `server`'s secure context on each `signal` (default SIGHUP) and logs the outcome. */
export const watchSecureContext = (server: SecureServer, files: SecureContextFiles, options: { signal?: NodeJS.Signals } = {}): () => void =>
  watch(privsep, () => lifecycle.logger, server, files, options.signal)
