// The hand-off: the root process tells privsep-monitor (crates/monitor) what child to start,
// then becomes it (exec in place, same pid) or, with `exit: false`, starts it as a child and
// waits. After an exec no JavaScript runs as root any more.
const os = process.getBuiltinModule('node:os') // not `import`: see src/index.ts
import { fromNative, PrivsepError } from './errors.js'
import type { Network } from './listener.js'
import { isSea, monitorPath, native, type MonitorReport, type PassedEntry } from './native.js'
import { checkSandboxOption, sandboxProfile, type SandboxOptions } from './sandbox.js'

export interface ForkExecOptions {
  /** The user to run as; its supplementary groups come along. Must not be root. */
  user: string
  /** A group to run as instead of the user's primary group. Must not be gid 0. */
  group?: string
  /** The child's umask, an integer in 0..0o777. Default: this process's, unchanged. */
  umask?: number
  /**
   * The absolute path of the folder the child starts in. Default: this process's current
   * folder. Either way the child enters it by its path as the user, after the drop, so it
   * never inherits a folder of root's: one below a folder the user cannot search is refused
   * (`ERR_PRIVSEP_NO_ACCESS`) rather than handed over.
   */
  cwd?: string
  /**
   * Signals the monitor passes on to the child. Default `forwardedSignals`. SIGUSR1 is left
   * out on purpose: it opens Node's inspector in the child. A signal not in the list acts
   * on the monitor as on any process (SIGUSR1 is ignored).
   */
  signals?: readonly NodeJS.Signals[]
  /**
   * The signal that makes the monitor start a new generation of the program and retire the old
   * one once the new one calls `ready()` (a zero-downtime upgrade); `null`: none. Default
   * SIGUSR2. It is not forwarded.
   */
  upgradeSignal?: NodeJS.Signals | null
  /**
   * A file to write this process's pid into (the pid to signal: it becomes the monitor), for
   * `privsep reload --pid-file` and scripts. Absolute, in a folder of root's that no one else
   * can write (`/run`, `/run/NAME`). Left in place at the end: `privsep reload` signals only a
   * running privsep-monitor. Default: none.
   */
  pidFile?: string
  /** How long a new generation may take to call `ready()` before it is killed. Default 30000. */
  readyTimeoutMs?: number
  /**
   * What the child may ask for at run time (`requestFile`, `requestListener`) beyond what was
   * opened and bound before the hand-off, which it may always ask for again.
   */
  allow?: BrokerPolicy
  /**
   * The kernel sandbox the child starts in (Linux: Landlock and a seccomp deny-list, applied
   * before exec; docs/SECURITY.md, "The child starts in a kernel sandbox"). Default: on.
   * `false`: none. An object widens the profile (folders to read or write, programs to
   * execute, ports to connect to, io_uring) or requires it whole (`require`).
   */
  sandbox?: false | SandboxOptions
  /**
   * true (default): this process becomes the monitor, which ends the way the child ends (its
   * exit code, or death by its signal). false: start the monitor as a child and resolve
   * with how the program ended, for tests and embedders.
   */
  exit?: boolean
}

export interface BrokerPolicy {
  /** Files by absolute path. */
  files?: readonly string[]
  /** Folders: any file below them (e.g. `/etc/letsencrypt/live/`). */
  folders?: readonly string[]
  /** Listeners by network and address, as `listen` takes them. */
  listeners?: ReadonlyArray<readonly [Network, string]>
}

export interface ChildExit {
  /** The child's exit code, or null if a signal ended it. */
  code: number | null
  /** The signal that ended the child, e.g. 'SIGKILL', or null. */
  signal: NodeJS.Signals | null
  /** True when filesImmediate was on: no child was started, this process goes on. */
  inProcess?: boolean
}

/** Signals the monitor passes on to the child by default. */
export const forwardedSignals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']

const invalid = (message: string): PrivsepError => new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `forkExecUnprivileged: ${message}`)

/** Checks the options every platform takes, before anything is started. */
export function checkOptions (options: ForkExecOptions): void {
  if (typeof options?.user !== 'string' || options.user === '') throw invalid('options.user must name the user to run as')
  if (options.group !== undefined && (typeof options.group !== 'string' || options.group === '')) throw invalid('options.group must be a group name')
  const { umask } = options
  if (umask !== undefined && !(Number.isInteger(umask) && umask >= 0 && umask <= 0o777)) {
    throw invalid(`options.umask must be an integer from 0 to 0o777, not ${String(umask)}`)
  }
  checkSandboxOption(options.sandbox)
  const { allow } = options
  if (allow !== undefined && (typeof allow !== 'object' || allow === null)) throw invalid('options.allow must be { files?, folders?, listeners? }')
  for (const key of ['files', 'folders', 'listeners'] as const) {
    if (allow?.[key] !== undefined && !Array.isArray(allow[key])) throw invalid(`options.allow.${key} must be an array`)
  }
  for (const path of [...(allow?.files ?? []), ...(allow?.folders ?? [])]) {
    if (typeof path !== 'string' || !path.startsWith('/')) throw invalid(`options.allow: ${JSON.stringify(path)} is not an absolute path`)
  }
}

/** The policy as the hand-off carries it: `[kind, value]` with canonical addresses. */
function allowEntries (allow: BrokerPolicy | undefined): Array<[string, string]> {
  return [
    ...(allow?.files ?? []).map((path): [string, string] => ['file', path]),
    ...(allow?.folders ?? []).map((path): [string, string] => ['folder', path]),
    ...(allow?.listeners ?? []).map(([network, address]): [string, string] => [network, native().parseAddress(network, address)])
  ]
}

/** The numbers of the signals to forward (Unix: Windows has no SIGQUIT or SIGUSR2). */
export function signalNumbers (options: ForkExecOptions): { forwarded: number[], upgrade: number } {
  const numbers = os.constants.signals as Record<string, number>
  const number = (what: string, name: unknown): number => {
    if (typeof name !== 'string' || numbers[name] === undefined || name === 'SIGKILL' || name === 'SIGSTOP') {
      throw invalid(`${what}: ${String(name)} is not a signal that can be caught`)
    }
    return numbers[name]
  }
  const upgrade = options.upgradeSignal === null ? 0 : number('options.upgradeSignal', options.upgradeSignal ?? 'SIGUSR2')
  const forwarded = (options.signals ?? forwardedSignals).map((name) => number('options.signals', name))
  if (forwarded.includes(upgrade)) throw invalid(`options.signals: ${String(options.upgradeSignal ?? 'SIGUSR2')} is the upgrade signal, which the monitor acts on itself`)
  if (options.cwd !== undefined && (typeof options.cwd !== 'string' || !options.cwd.startsWith('/') || options.cwd.includes('\0'))) {
    throw invalid(`options.cwd must be an absolute path, not ${JSON.stringify(options.cwd)}`)
  }
  const timeout = options.readyTimeoutMs
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0 && timeout < 2 ** 31)) {
    throw invalid(`options.readyTimeoutMs must be a positive integer, not ${String(timeout)}`)
  }
  return { forwarded, upgrade }
}

/** The request for `native().handOff`, for a monitor that sees `passed` at the given fds. */
type SignalNumbers = ReturnType<typeof signalNumbers>

function request (options: ForkExecOptions, signals: SignalNumbers, passed: PassedEntry[], reportFd: number, parentPid: number): Parameters<ReturnType<typeof native>['handOff']>[0] {
  // A single executable application is its own script: Node puts the executable's name in
  // argv[1] again, and takes no Node options from its command line (its own execArgv, if
  // any, come from its blob), so the child gets the user's arguments only.
  const sea = isSea()
  const script = sea ? undefined : process.argv[1]
  return {
    program: process.execPath,
    // The child starts in secure-execution mode (docs/SECURITY.md, "Not dumpable"), where Node
    // ignores NODE_OPTIONS: its options come first on the command line instead, as Node would
    // have read them (the variable stays for what the child starts).
    argv: sea ? [process.argv0, ...process.argv.slice(2)] : [process.argv0, ...nodeOptions(process.env.NODE_OPTIONS ?? ''), ...process.execArgv, ...process.argv.slice(1)],
    // systemd's notification socket is the monitor's (the main process, same pid) when this
    // process becomes it; the child asks the monitor to notify. WATCHDOG_USEC stays: the child
    // keeps the watchdog fed through the monitor.
    env: Object.entries(process.env).filter(([name]) => name !== 'NOTIFY_SOCKET' && name !== 'WATCHDOG_PID')
      .map(([name, value]) => `${name}=${value ?? ''}`),
    notifySocket: parentPid === 0 ? process.env.NOTIFY_SOCKET : undefined,
    user: options.user,
    group: options.group,
    umask: options.umask,
    cwd: options.cwd ?? process.cwd(),
    signals: signals.forwarded,
    upgradeSignal: signals.upgrade,
    readyTimeoutMs: options.readyTimeoutMs,
    reportFd,
    parentPid,
    passed,
    allow: allowEntries(options.allow),
    sandbox: sandboxProfile(options.sandbox, script),
    readable: script !== undefined && process.getBuiltinModule('node:fs').statSync(script, { throwIfNoEntry: false })?.isFile() === true ? [script] : []
  }
}

/**
 * NODE_OPTIONS split as Node splits it (node.cc, ParseNodeOptionsEnvVar): spaces separate,
 * double quotes group, and a backslash inside quotes takes the next character as it is. Node
 * itself refused a malformed value before this process ran.
 */
export function nodeOptions (text: string): string[] {
  const args: string[] = []
  let quoted = false
  let fresh = true
  for (let i = 0; i < text.length; i++) {
    let c = text[i]
    if (c === '\\' && quoted && i + 1 < text.length) {
      c = text[++i]
    } else if (c === ' ' && !quoted) {
      fresh = true
      continue
    } else if (c === '"') {
      quoted = !quoted
      continue
    }
    if (fresh) args.push(c); else args[args.length - 1] += c
    fresh = false
  }
  return args
}

/**
 * Replaces this process with the monitor, which starts the child with `kept` and ends as it
 * ends. Returns only by throwing: the user or the program was refused, or the exec failed.
 */
export function execMonitor (kept: PassedEntry[], options: ForkExecOptions, signals: SignalNumbers): never {
  const path = monitorPath()
  const fd = native().handOff(request(options, signals, kept, -1, 0))
  try {
    return native().execMonitor(path, fd, kept.map(([keptFd]) => keptFd))
  } finally {
    native().close(fd)
  }
}

/** The monitor this process started with `exit: false`, while it runs. */
let supervised: number | undefined

/**
 * True while this process waits for a monitor it started (`exit: false`): signals are the
 * child's to act on (the lifecycle's signal handlers stand back, so this process does not
 * exit while the child drains).
 */
export function supervisingChild (): boolean {
  return supervised !== undefined
}

/** Sets (a pid) or clears (undefined) the child this process waits for: src/windows.ts. */
export function markSupervised (pid: number | undefined): void {
  supervised = pid
}

/**
 * Starts the monitor as a child of this process (report pipe at 3, description at 4, the
 * passed descriptors from 5) and returns a promise of how the program ends; meanwhile
 * `signals` are forwarded to the monitor. Throws at once when the user or the program is
 * refused; the promise rejects with the monitor's error when the child could not start.
 */
export function runMonitor (kept: PassedEntry[], options: ForkExecOptions, signals: SignalNumbers): Promise<ChildExit> {
  const path = monitorPath()
  const passed = kept.map(([, kind, value], i): PassedEntry => [5 + i, kind, value])
  const fd = native().handOff(request(options, signals, passed, 3, process.pid))
  const { spawn } = process.getBuiltinModule('node:child_process')
  try {
    const monitor = spawn(path, ['4'], { stdio: ['inherit', 'inherit', 'inherit', 'pipe', fd, ...kept.map(([keptFd]) => keptFd)], env: {} })
    return supervise(monitor, [...signals.forwarded, signals.upgrade].filter((n) => n !== 0))
  } finally {
    native().close(fd)
  }
}

async function supervise (monitor: import('node:child_process').ChildProcess, signals: number[]): Promise<ChildExit> {
  const exited = new Promise<ChildExit>((resolve, reject) => {
    monitor.on('error', (err) => { reject(fromNative(err)) })
    monitor.on('exit', (code, signal) => resolve({ code, signal }))
  })
  let text = ''
  const report = monitor.stdio[3] as import('node:stream').Readable | null
  report?.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
  const reported = new Promise<void>((resolve) => report === null ? resolve() : report.on('close', resolve))
  const names = os.constants.signals as Record<string, number>
  const forward = (signal: NodeJS.Signals): void => { monitor.kill(signal) }
  const forwarded = Object.keys(names).filter((name) => signals.includes(names[name])) as NodeJS.Signals[]
  for (const signal of forwarded) process.on(signal, forward)
  supervised = monitor.pid
  try {
    await reported
    const decoded = native().readReport(text)
    if (decoded === null || decoded.length === 4) throw reportError(decoded, await exited)
    return await exited
  } finally {
    supervised = undefined
    for (const signal of forwarded) process.off(signal, forward)
  }
}

/** The error a failed report describes, in Node's shape (see `fromNative`). */
function reportError (report: MonitorReport | null, status: ChildExit): unknown {
  if (report === null || report.length !== 4) {
    return new PrivsepError('ERR_PRIVSEP_INTERNAL', `privsep-monitor ended (${status.signal ?? `exit ${String(status.code)}`}) without saying whether the child started`)
  }
  const [code, errno, syscall, message] = report
  return fromNative(Object.assign(new Error(message), { code }, syscall !== '' ? { errno, syscall } : {}))
}
