// The Windows hand-off: an elevated process starts the same program again as a restricted
// copy of its own token (crates/windows/src/restricted.rs), with the files openPrivileged
// opened as its descriptors 3, 4, ..., and then only waits: it ends with the child's exit
// code, and the child's kill-on-close job ends the child if this process dies first.
const os = process.getBuiltinModule('node:os') // not `import`: see src/index.ts
import { PrivsepError } from './errors.js'
import { markSupervised, type ChildExit, type ForkExecOptions } from './monitor.js'
import { native, type PassedEntry } from './native.js'

/** Whether this process's token has Administrators enabled (elevated), asked once. */
let elevated: boolean | undefined
export function isElevated (): boolean {
  elevated ??= native().processToken().elevated
  return elevated
}

const unsupported = (message: string): PrivsepError => new PrivsepError('ERR_PRIVSEP_UNSUPPORTED', `forkExecUnprivileged: ${message}`)

/**
 * What Windows can honour of the options, refused rather than ignored: `user` must be this
 * process's own account (the child runs as a restricted copy of its token; starting a process
 * as another account needs that account's password or a service), and the options that
 * steer the monitor (groups, umask, the broker, signals, upgrades) have no Windows meaning.
 */
export function checkWindowsOptions (options: ForkExecOptions): void {
  const own = os.userInfo().username
  const named = options.user.includes('\\') ? options.user.slice(options.user.lastIndexOf('\\') + 1) : options.user
  if (named.toLowerCase() !== own.toLowerCase()) {
    throw unsupported(`Windows cannot start the program as user ${JSON.stringify(options.user)}: the child runs as a restricted copy ` +
      `of this process's own account (Administrators deny-only, no privileges, Medium integrity); pass user: ${JSON.stringify(own)} ` +
      '(os.userInfo().username), or set filesImmediate = true to run in this process')
  }
  // upgradeSignal: null (no upgrades) is what Windows does anyway.
  const steering = (['group', 'umask', 'cwd', 'allow', 'signals', 'upgradeSignal', 'readyTimeoutMs'] as const)
    .filter((key) => options[key] !== undefined && !(key === 'upgradeSignal' && options[key] === null))
  if (steering.length > 0) {
    throw unsupported(`options.${steering.join(', options.')} ${steering.length === 1 ? 'has' : 'have'} no meaning on Windows ` +
      '(no groups or umask, no broker or upgrades; Ctrl+C and Ctrl+Break reach the child from the console): leave them out there')
  }
}

/**
 * Starts the restricted child with the `kept` files and closes this process's copies
 * (`close`). With `exit` (the default) this process then waits, ignoring Ctrl+C and
 * Ctrl+Break, and exits with the child's code: no JavaScript runs here again. Otherwise the
 * promise resolves with the child's exit once it ends.
 */
export async function startRestricted (kept: PassedEntry[], options: ForkExecOptions, close: () => void): Promise<ChildExit> {
  const argv = [process.argv0, ...process.execArgv, ...process.argv.slice(1)]
  const env = Object.entries(process.env).map(([name, value]) => `${name}=${value ?? ''}`)
  const [pid, child, job] = native().spawnRestricted(process.execPath, argv, env, kept)
  close()
  if (options.exit !== false) native().exitWithChild(child)
  // Ctrl+C and Ctrl+Break reach the child from the console: this process stays to wait.
  const stay = (): void => {}
  process.on('SIGINT', stay).on('SIGBREAK', stay)
  markSupervised(pid)
  try {
    return { code: await native().waitChild(child, job), signal: null }
  } finally {
    markSupervised(undefined)
    process.off('SIGINT', stay).off('SIGBREAK', stay)
  }
}
