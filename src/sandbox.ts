// The child's kernel sandbox (issue 21): the profile the root process describes for the
// monitor (Landlock and seccomp, applied in the fork before exec: crates/core/src/sys/unix/
// sandbox.rs), and the state the child is told at start (PRIVSEP_SANDBOX, docs/PROTOCOL.md).
const fs = process.getBuiltinModule('node:fs') // not `import`: see src/index.ts
const path = process.getBuiltinModule('node:path')
import { PrivsepError } from './errors.js'
import { isSea } from './native.js'

/** `forkExecUnprivileged({ sandbox })`: what the child may reach beyond the default profile. */
export interface SandboxOptions {
  /** Folders (or files) the child may read, besides its own tree and what Node needs. */
  read?: readonly string[]
  /** Folders the child may write in (create, write, remove, rename below them). Default: none. */
  write?: readonly string[]
  /** Programs (or folders of programs) the child may execute. Default: node only. */
  execute?: readonly string[]
  /** TCP ports the child may connect to. Default: any (connect is not restricted). */
  connect?: readonly number[]
  /** Allow io_uring_setup (libuv otherwise uses epoll). Default false. */
  ioUring?: boolean
  /** Refuse to start (`ERR_PRIVSEP_SANDBOX`) unless all of it is enforced. Default false. */
  require?: boolean
}

/** What the child runs in, as it learned at start (`privsep.sandbox`). */
export interface SandboxState {
  /** `full`: everything; `partial`: some of it (see `missing`); `none`; `off`: `sandbox: false`; `not applicable`: no monitor, or Windows. */
  state: 'full' | 'partial' | 'none' | 'off' | 'not applicable'
  landlock: boolean
  seccomp: boolean
  /** The kernel's Landlock ABI (0: none). */
  abi: number
  required: boolean
  /** What is not enforced: `landlock`, `seccomp`, or rights this ABI lacks (`net`, `scopes`, ...). */
  missing: string[]
}

/** The profile as the hand-off carries it (crates/core/wire/src/sandbox.rs). */
export interface SandboxProfile { flags: number, read: string[], execute: string[], write: string[], connect: number[] }

const ON = 1
const REQUIRED = 2
const IO_URING = 4
const CONNECT_LISTED = 8

/**
 * What Node needs from the system, read-only: TLS configuration and CA certificates (without
 * openssl.cnf Node exits before any JavaScript runs), time zones, the resolver's files (or
 * dns.lookup fails), the user and group names (or os.userInfo() fails; no password hash is
 * in them), the loader's cache, and randomness; the memory Node sizes its heap by (the
 * machine's, and its cgroup's limit); and ldd, which privsep's loader reads to tell glibc from
 * musl (without it, it asks Node's diagnostic report: about 5 ms at every start). /dev/null (read and write) and the
 * child's own /proc/self are added by the fork itself.
 */
export const systemFiles: readonly string[] = [
  '/etc/ssl', '/usr/lib/ssl', '/usr/share/ca-certificates', '/usr/local/share/ca-certificates', '/etc/pki/tls', '/etc/ca-certificates',
  '/etc/localtime', '/usr/share/zoneinfo',
  '/etc/hosts', '/etc/resolv.conf', '/etc/nsswitch.conf', '/etc/host.conf', '/etc/gai.conf',
  '/etc/passwd', '/etc/group',
  '/etc/ld.so.cache', '/dev/urandom',
  '/proc/meminfo', '/sys/fs/cgroup',
  '/usr/bin/ldd'
]

const invalid = (message: string): PrivsepError => new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `forkExecUnprivileged: options.sandbox${message}`)

/** Checks `options.sandbox` before anything starts. */
export function checkSandboxOption (option: unknown): void {
  if (option === undefined || option === false) return
  if (process.platform !== 'linux' && (option as SandboxOptions)?.require === true) {
    throw new PrivsepError('ERR_PRIVSEP_SANDBOX', `forkExecUnprivileged: options.sandbox.require, but ${process.platform} has no Landlock or seccomp: ` +
      (process.platform === 'win32' ? 'the restricted token is what the child gets there (docs/SECURITY.md, "Windows"); ' : '') + 'leave require out')
  }
  if (typeof option !== 'object' || option === null) throw invalid(' must be false or { read?, write?, execute?, connect?, ioUring?, require? }')
  const given = option as Record<string, unknown>
  for (const key of Object.keys(given)) {
    if (!['read', 'write', 'execute', 'connect', 'ioUring', 'require'].includes(key)) throw invalid(`.${key} is not an option (read, write, execute, connect, ioUring, require)`)
  }
  for (const key of ['read', 'write', 'execute'] as const) {
    const list = given[key]
    if (list === undefined) continue
    if (!Array.isArray(list)) throw invalid(`.${key} must be an array of absolute paths`)
    for (const item of list) {
      if (typeof item !== 'string' || !item.startsWith('/') || item.includes('\0') || item.split('/').includes('..')) {
        throw invalid(`.${key}: ${JSON.stringify(item)} is not an absolute path without ..`)
      }
    }
  }
  const { connect } = given
  if (connect !== undefined && !(Array.isArray(connect) && connect.every((port) => Number.isInteger(port) && port >= 1 && port <= 65535))) {
    throw invalid('.connect must be an array of TCP ports (1..65535)')
  }
  for (const key of ['ioUring', 'require'] as const) {
    if (given[key] !== undefined && typeof given[key] !== 'boolean') throw invalid(`.${key} must be a boolean`)
  }
}

/** The folder of the nearest package.json at or above `from`, else `from` itself. */
function packageRoot (from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir
    if (path.dirname(dir) === dir) return from
  }
}

/** The files this process has mapped executable: node, its loader and libraries, addons. */
function mappedExecutables (): string[] {
  let maps = ''
  try { maps = fs.readFileSync('/proc/self/maps', 'utf8') } catch { return [] }
  const files = new Set<string>()
  for (const line of maps.split('\n')) {
    const fields = line.split(/\s+/)
    if (fields.length >= 6 && fields[1].includes('x') && fields[5].startsWith('/')) files.add(fields.slice(5).join(' ').replace(/ \(deleted\)$/, ''))
  }
  return [...files]
}

/**
 * The profile for `options.sandbox` (`false`: off): read and execute node and what it has
 * loaded; read the program's own tree (its package root, node_modules included), privsep's
 * own, and `systemFiles`; write nothing; plus what the options widen.
 */
export function sandboxProfile (option: false | SandboxOptions | undefined, script: string | undefined): SandboxProfile {
  if (option === false || process.platform !== 'linux') return { flags: 0, read: [], execute: [], write: [], connect: [] }
  // privsep's package root (dist/..); in a single executable application, the executable's
  // folder, where its addon, monitor and node_modules are.
  const own = isSea() ? path.dirname(process.execPath) : path.dirname(path.dirname(new URL(import.meta.url).pathname))
  // A script with no package.json above it has its folder as its tree; at / that would be
  // everything, so then only the script itself.
  const root = script !== undefined ? packageRoot(path.dirname(path.resolve(script))) : undefined
  const tree = root === undefined ? [] : root === '/' ? [path.resolve(script as string)] : [root]
  const extraCa = process.env.NODE_EXTRA_CA_CERTS
  const real = (file: string): string => { try { return fs.realpathSync(file) } catch { return file } }
  const flags = ON | (option?.require === true ? REQUIRED : 0) | (option?.ioUring === true ? IO_URING : 0) | (option?.connect !== undefined ? CONNECT_LISTED : 0)
  const unique = (list: string[]): string[] => [...new Set(list)]
  return {
    flags,
    read: unique([...tree, own, ...systemFiles, ...(extraCa !== undefined && extraCa.startsWith('/') ? [extraCa] : []), ...(option?.read ?? [])]),
    execute: unique([real(process.execPath), ...mappedExecutables(), ...(option?.execute ?? [])]),
    write: unique([...(option?.write ?? [])]),
    connect: [...(option?.connect ?? [])]
  }
}

/**
 * The state `PRIVSEP_SANDBOX` describes, strictly: `v1 landlock:y|- seccomp:y|- abi:N
 * required:0|1 missing:a,b`. Without it: `not applicable` (no monitor started this process,
 * or Windows) or `off`, as `started` says.
 */
export function parseSandboxState (text: string | undefined, started: boolean): SandboxState {
  const none = (state: SandboxState['state']): SandboxState => ({ state, landlock: false, seccomp: false, abi: 0, required: false, missing: [] })
  if (text === undefined) return none(started && process.platform === 'linux' ? 'off' : 'not applicable')
  const match = /^v1 landlock:([y-]) seccomp:([y-]) abi:(0|[1-9][0-9]{0,3}) required:([01]) missing:((?:(?:refer|truncate|net|ioctl_dev|scopes|landlock)(?:,(?:refer|truncate|net|ioctl_dev|scopes|landlock))*)?)$/.exec(text)
  if (match === null) throw new PrivsepError('ERR_PRIVSEP_ENV_MALFORMED', `PRIVSEP_SANDBOX ${JSON.stringify(text)} is not a sandbox state (docs/PROTOCOL.md)`)
  const landlock = match[1] === 'y'
  const seccomp = match[2] === 'y'
  const missing = [...new Set([...(landlock ? [] : ['landlock']), ...(landlock && match[5] !== '' ? match[5].split(',') : []), ...(seccomp ? [] : ['seccomp'])])]
  return {
    state: missing.length === 0 ? 'full' : landlock || seccomp ? 'partial' : 'none',
    landlock,
    seccomp,
    abi: Number(match[3]),
    required: match[4] === '1',
    missing
  }
}

/** The one line the child logs at start. */
export function describeSandbox (state: SandboxState): string {
  if (state.state === 'full') return `sandbox: full (Landlock ABI ${state.abi}, seccomp deny-list)`
  if (state.state === 'off') return 'sandbox: off (sandbox: false)'
  if (state.state === 'not applicable') return 'sandbox: not applicable here (Windows: the restricted token is what the child has)'
  return `sandbox: ${state.state}${state.abi > 0 ? ` (Landlock ABI ${state.abi})` : ''}; not enforced: ${state.missing.join(', ')}`
}
