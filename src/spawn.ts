// The root parent's side of the child: start it, forward signals to it, wait for it, and end
// the way it ended.
import { native, type PassedEntry } from './native.js'

export interface ForkExecOptions {
  /** The user to run as; its supplementary groups come along. Must not be root. */
  user: string
  /** A group to run as instead of the user's primary group. */
  group?: string
  /** The child's umask. Default: this process's, unchanged. */
  umask?: number
  /**
   * true (default): when the child ends, this process ends the same way (its exit code, or
   * death by its signal). false: resolve with how it ended, for tests and embedders.
   */
  exit?: boolean
}

export interface ChildExit {
  /** The child's exit code, or null if a signal ended it. */
  code: number | null
  /** The signal that ended the child, e.g. 'SIGKILL', or null. */
  signal: NodeJS.Signals | null
  /** True when filesImmediate was on: no child was started, this process goes on. */
  inProcess?: boolean
}

/** Signals the parent passes on to the child instead of acting on them. */
export const forwardedSignals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']

/** Starts this program again (same executable, Node options and arguments) as `options.user`. */
export function spawnChild (passed: PassedEntry[], options: ForkExecOptions): number {
  return native().spawn({
    program: process.execPath,
    argv: [process.argv0, ...process.execArgv, ...process.argv.slice(1)],
    env: Object.entries(process.env).map(([name, value]) => `${name}=${value ?? ''}`),
    passed,
    user: options.user,
    group: options.group,
    umask: options.umask
  })
}

/** The child this process supervises as a root parent, while it runs. */
let supervised: number | undefined

/**
 * True while this process is a root parent waiting for its child: signals are the child's
 * to act on (the lifecycle's signal handlers stand back, so the parent does not exit while
 * the child drains).
 */
export function supervisingChild (): boolean {
  return supervised !== undefined
}

/** Forwards signals to child `pid` until it ends, then ends like it (or resolves, `exit: false`). */
export async function superviseChild (pid: number, options: ForkExecOptions): Promise<ChildExit> {
  const forward = (signal: NodeJS.Signals): void => {
    try { process.kill(pid, signal) } catch { /* already gone: wait() reports how */ }
  }
  for (const signal of forwardedSignals) process.on(signal, forward)
  supervised = pid
  let status: [number | null, number | null]
  try {
    status = await native().wait(pid)
  } finally {
    supervised = undefined
    for (const signal of forwardedSignals) process.off(signal, forward)
  }
  const [code, signalNumber] = status
  if (options.exit !== false) {
    if (signalNumber !== null) native().dieBySignal(signalNumber)
    process.exit(code ?? 1)
  }
  return { code, signal: signalNumber === null ? null : signalName(signalNumber) }
}

function signalName (signalNumber: number): NodeJS.Signals {
  const entry = Object.entries(process.getBuiltinModule('node:os').constants.signals).find(([, number]) => number === signalNumber)
  return (entry?.[0] ?? `SIG${signalNumber}`) as NodeJS.Signals
}
