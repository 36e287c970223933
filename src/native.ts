// The addon loader and the addon's types, kept by hand (napi build writes none without
// napi-derive); __test__/package.test.mjs checks that they match what the addon exports.
// Builtins come from process.getBuiltinModule, not `import`: see src/index.ts.
const fs = process.getBuiltinModule('node:fs')
const path = process.getBuiltinModule('node:path')
const { fileURLToPath } = process.getBuiltinModule('node:url')
import { fromNative, PrivsepError } from './errors.js'

/** One passed descriptor as the addon reports and takes it: `[fd, kind, value]`. */
export type PassedEntry = [fd: number, kind: string, value: string]

/** What the monitor is told about the child (docs/PROTOCOL.md, "The hand-off"). */
export interface HandOffRequest {
  program: string
  argv: string[]
  env: string[]
  user: string
  group?: string
  umask?: number
  /** The absolute path of the folder the child starts in. */
  cwd: string
  /** Signal numbers the monitor forwards. */
  signals: number[]
  /** The monitor's fd for its report, or -1. */
  reportFd: number
  /** Nonzero: the monitor dies with this process. */
  parentPid: number
  /** The monitor's descriptors to pass, in order. */
  passed: PassedEntry[]
  /** What the child may ask the broker for beyond `passed`: `[kind, value]`, kind a network, `file` or `folder`. */
  allow: Array<[kind: string, value: string]>
  /** Files the user must be able to read (the program's script). */
  readable: string[]
  /** The child's kernel sandbox (src/sandbox.ts; flags 0: none). */
  sandbox: import('./sandbox.js').SandboxProfile
  /** `NOTIFY_SOCKET`, for the monitor to send systemd notifications to. */
  notifySocket?: string
  /** The signal number that starts an upgrade (0: none). */
  upgradeSignal?: number
  /** How long a new generation may take to be ready, in ms. */
  readyTimeoutMs?: number
}

/** A broker request (docs/PROTOCOL.md, "The broker"). */
export type BrokerRequest = ['file', path: string] | ['listener', network: string, address: string, backlog: number, mode: number | undefined] | ['notify', state: string] | ['upgrade']

/** The monitor's report, decoded: the child's pid, or why it did not start. */
export type MonitorReport = [pid: number] | [code: string, errno: number, syscall: string, message: string]

export interface Native {
  parseAddress (network: string, address: string): string
  listen (network: string, address: string, backlog: number, mode?: number): number
  restore (pid: string | undefined, fds: string | undefined, files: string | undefined, ppid: number): [entries: PassedEntry[], channel: number | null] | null
  openFile (path: string): number
  notify (socket: string, state: string): void
  storeName (network: string, address: string): string | null
  fdStore (socket: string, name: string, fd: number | null): void
  activated (listenPid: string | undefined, listenFds: string | undefined, listenFdnames: string | undefined, pid: number): Array<[fd: number, name: string, kind: string, address: string]> | null
  matches (fd: number, network: string, address: string): boolean
  brokerRequest (channel: number, id: number, request: BrokerRequest): Promise<number>
  handOff (request: HandOffRequest): number
  execMonitor (path: string, handOffFd: number, keep: number[]): never
  readReport (text: string): MonitorReport | null
  close (fd: number): void
  /** The metrics region at `fd` mapped shared for the rest of the process, or null when `fd` is not one (the caller closes `fd`). */
  metricsRegion (fd: number): ArrayBuffer | null
  /** Queues `signal` to `pid` and waits (blocking) for its answer, a number, or null after `timeoutMs` (`privsep reload`). */
  queueSignal (pid: number, signal: number, timeoutMs: number): number | null
  /** A broker message decoded and encoded again (the property tests' way to the Rust decoders). */
  decodeMessage (format: 'request' | 'reply', bytes: number[]): number[]
  /** Windows, elevated: starts the restricted child with the `file` entries at its descriptors 3..; `[pid, process, job]`. */
  spawnRestricted (program: string, argv: string[], env: string[], passed: PassedEntry[]): [pid: number, process: number, job: number]
  /** Windows: the child's exit code, once it ends; closes both handles. */
  waitChild (process: number, job: number): Promise<number>
  /** Windows: waits for the child (ignoring Ctrl+C and Ctrl+Break), then exits with its code. */
  exitWithChild (process: number): never
  /** Windows: this process's token. */
  processToken (): ProcessToken
  /** Windows: every handle of this process that names a file. */
  openHandles (): Array<[handle: number, path: string]>
  /** Windows, for tests: an inheritable duplicate of `fd`'s handle, never closed (a decoy a restricted child must not get). */
  leakInheritable (fd: number): number
}

/** A Windows token as `processToken` reads it: groups and privileges with their attribute bits. */
export interface ProcessToken {
  /** Administrators is enabled. */
  elevated: boolean
  /** The integrity level's RID: 0x2000 Medium, 0x3000 High. */
  integrity: number
  user: string
  groups: Array<[sid: string, attributes: number]>
  privileges: Array<[name: string, attributes: number]>
}

/** Every key of `Native`, once: the compiler rejects a missing or extra name here. */
const nativeNames: Record<keyof Native, true> =
  { parseAddress: true, listen: true, restore: true, openFile: true, notify: true, storeName: true, fdStore: true, activated: true, matches: true, brokerRequest: true, handOff: true, execMonitor: true, readReport: true, close: true, metricsRegion: true, queueSignal: true, decodeMessage: true,
    spawnRestricted: true, waitChild: true, exitWithChild: true, processToken: true, openHandles: true, leakInheritable: true }

/** The names the addon exports; package.test.mjs checks them against the built addon. */
export const nativeFunctions = Object.keys(nativeNames) as ReadonlyArray<keyof Native>

/** The platforms privsep publishes a binary package for (package.json `napi.targets`). */
export const publishedPlatforms: readonly string[] =
  ['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']

/** Whether this Linux runs on musl rather than glibc (Alpine, Void, ...). */
function isMusl (): boolean {
  // Cheap first, as napi-rs's loaders do: ldd is a script that names its libc. The diagnostic
  // report costs milliseconds per process (docs/BENCHMARKS.md): only when ldd says nothing.
  try {
    const ldd = fs.readFileSync('/usr/bin/ldd', 'latin1')
    if (ldd.includes('musl')) return true
    if (ldd.includes('GNU C Library') || ldd.includes('GLIBC')) return false
  } catch { /* no ldd (a minimal image): ask Node's diagnostic report */ }
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string }, sharedObjects?: string[] } | undefined
    if (report?.header?.glibcVersionRuntime) return false
    return report?.sharedObjects?.some((name) => /(?:^|\/)(?:ld-musl-|libc\.musl-)/.test(name)) ?? false
  } catch {
    return false
  }
}

/** The platform part of binary and package names, as @napi-rs/cli spells it. */
export function platformTriple (): string {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  // The DLL is built with mingw but published under the msvc target's name: official node.exe
  // builds look for that one, and npm on Windows rejects the gnu package's `libc` field.
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/**
 * Whether this is a single executable application (Node's SEA: `--experimental-sea-config`
 * and postject): the program is the executable itself, bundled into it as one CommonJS
 * script, so there is no package folder to look in (`import.meta` is empty) and `require`
 * takes builtins only. privsep then finds its binaries, and pino and prom-client, beside the
 * executable.
 */
export function isSea (): boolean {
  try {
    return (process.getBuiltinModule('node:sea') as { isSea?: () => boolean } | undefined)?.isSea?.() === true
  } catch {
    return false
  }
}

/** The folder that holds the executable of a SEA, where its privsep binaries are. */
const besideExecutable = (): string => path.dirname(process.execPath)

/**
 * pino or prom-client, which privsep loads on first use. In a SEA from `node_modules` beside
 * the executable; when they are not there, the error says what to do instead.
 */
export function requireDependency<T> (name: string): T {
  const { createRequire } = process.getBuiltinModule('node:module')
  if (!isSea()) return createRequire(import.meta.url)(name) as T
  try {
    return createRequire(path.join(besideExecutable(), 'privsep-sea.js'))(name) as T
  } catch (err) {
    throw new PrivsepError('ERR_PRIVSEP_UNSUPPORTED',
      `privsep cannot load ${name} in this single executable application (${reason(err)}): pass your own ` +
      (name === 'pino' ? 'logger (configureLifecycle({ logger }))' : 'prom-client registry, or registry: false') +
      `, or put node_modules/${name} beside ${process.execPath}`)
  }
}

let loaded: Native | undefined

/**
 * The addon at `candidate`, a file path or a package name. process.dlopen is how an ES module
 * loads an addon (Node's docs name it for that); `loaded` makes it happen once per process.
 */
function load (candidate: string): Partial<Native> {
  const file = path.isAbsolute(candidate) ? candidate : fileURLToPath(import.meta.resolve(candidate))
  const module = { exports: {} }
  process.dlopen(module, file)
  return module.exports
}

/** Why loading a candidate failed, in one line. */
function reason (err: unknown): string {
  const e = err as NodeJS.ErrnoException
  if (e?.code === 'ERR_MODULE_NOT_FOUND') return 'package not installed'
  const message = String(e?.message ?? err).split('\n')[0]
  return e?.code && !message.startsWith(e.code) ? `${e.code}: ${message}` : message
}

/**
 * The addon: a local build at the package root first (`npm run build` in a checkout), then the
 * platform package npm installs as an optional dependency. When neither loads, one error
 * names the platform, every path tried and why each failed.
 */
export function native (): Native {
  if (loaded) return loaded
  const triple = platformTriple()
  const sea = isSea()
  // A SEA: only beside the executable (it has no package folder and cannot resolve packages).
  const local = path.join(sea ? besideExecutable() : path.join(import.meta.dirname, '..'), `privsep.${triple}.node`)
  const candidates = sea ? [local] : [local, `privsep-${triple}`]
  const failures: string[] = []
  for (const candidate of candidates) {
    if (candidate === local && !fs.existsSync(local)) {
      failures.push(`  ${candidate}: no such file (no local build)`)
      continue
    }
    let addon: Partial<Native>
    try {
      addon = load(candidate)
    } catch (err) {
      failures.push(`  ${candidate}: ${reason(err)}`)
      continue
    }
    const missing = nativeFunctions.filter((name) => typeof addon[name] !== 'function')
    if (missing.length > 0) {
      failures.push(`  ${candidate}: loaded, but it lacks ${missing.join(', ')} (a binary from another privsep version?)`)
      continue
    }
    loaded = wrap(addon as Native)
    return loaded
  }
  throw new PrivsepError('ERR_PRIVSEP_NATIVE_LOAD',
    `privsep could not load its native addon for ${triple} (node ${process.version}); tried:\n${failures.join('\n')}\n${loadHint(triple, `privsep.${triple}.node and privsep-monitor.${triple}`)}`)
}

/**
 * What to do when the binaries are missing, by where this privsep came from: a checkout
 * builds them, a local tarball needs the platform package's tarball beside it, the registry's
 * package installs it as an optional dependency.
 */
function loadHint (triple: string, files: string): string {
  if (isSea()) return `this is a single executable application: put ${files} beside it (from the package privsep-${triple}, or a checkout's 'npm run build')`
  const packageRoot = path.join(import.meta.dirname, '..')
  if (fs.existsSync(path.join(packageRoot, 'Cargo.toml'))) return `this is a checkout of privsep: build it with 'npm run build' (needs Rust)`
  if (!publishedPlatforms.includes(triple)) {
    return `privsep publishes binaries for ${publishedPlatforms.join(', ')}; on ${triple} build it from a checkout with 'npm run build' (needs Rust)`
  }
  // npm records where each installed package came from in node_modules/.package-lock.json.
  let resolved: unknown
  try {
    const lock = JSON.parse(fs.readFileSync(path.join(packageRoot, '..', '.package-lock.json'), 'utf8')) as { packages?: Record<string, { resolved?: unknown }> }
    resolved = lock.packages?.['node_modules/privsep']?.resolved
  } catch {
    // Not installed by npm (or an old npm): the general advice below.
  }
  if (typeof resolved === 'string' && resolved.startsWith('file:')) {
    return `privsep was installed from a local tarball (${resolved}), which brings no binaries: install the platform package's tarball with it ` +
      `('npm run pack:local' in a checkout packs both, then npm install both files)`
  }
  return `reinstall privsep so npm installs its optional dependency privsep-${triple} (not with --no-optional / --omit=optional), or build it from a checkout with 'npm run build'`
}

let monitor: string | undefined

/**
 * The monitor executable, found the way the addon is: a local build at the package root
 * (`privsep-monitor.<platform>`), then the platform package. Root runs it, so it must be a
 * regular executable file that root alone can change (`checkRootsAlone`).
 */
export function monitorPath (): string {
  if (monitor) return monitor
  const triple = platformTriple()
  const name = `privsep-monitor.${triple}`
  const beside = path.join(besideExecutable(), name)
  const candidates: Array<[string, () => string]> = isSea()
    ? [[beside, () => beside]]
    : [
        [path.join(import.meta.dirname, '..', name), () => path.join(import.meta.dirname, '..', name)],
        [`privsep-${triple}/${name}`, () => fileURLToPath(import.meta.resolve(`privsep-${triple}/${name}`))]
      ]
  const failures: string[] = []
  for (const [shown, locate] of candidates) {
    let file: string
    try {
      file = locate()
      const stat = fs.statSync(file)
      if (!stat.isFile()) throw new Error('not a regular file')
      fs.accessSync(file, fs.constants.X_OK)
    } catch (err) {
      failures.push(`  ${shown}: ${reason(err)}`)
      continue
    }
    checkRootsAlone(file)
    monitor = file
    return file
  }
  throw new PrivsepError('ERR_PRIVSEP_NATIVE_LOAD',
    `privsep could not find its monitor executable for ${triple}; tried:\n${failures.join('\n')}\n` +
    loadHint(triple, name))
}

/**
 * Root runs the monitor: refuses one that anyone but root could change or replace
 * (`ERR_PRIVSEP_UNSAFE_MONITOR`): the file must be root's and writable by root alone, and, as
 * root, every folder and symlink on the way from `/` too (crates/core/src/paths.rs walks it, as
 * for `openPrivileged`: not writable by group or others unless sticky, as `/tmp` is). The file
 * checked is the one the walk opened.
 */
function checkRootsAlone (file: string): void {
  const unsafe = (why: string): PrivsepError => new PrivsepError('ERR_PRIVSEP_UNSAFE_MONITOR',
    `the monitor executable ${file} is not root's alone: ${why}. Root runs it, so whoever can change it could run code as root: ` +
    'install privsep as root, in folders only root can write (or build it there as root)')
  let fd: number | undefined
  try {
    if (process.getuid?.() === 0) fd = native().openFile(file)
    const stat = fd === undefined ? fs.statSync(file) : fs.fstatSync(fd)
    if (stat.uid !== 0) throw unsafe(`it is owned by uid ${stat.uid}`)
    if ((stat.mode & 0o022) !== 0) throw unsafe(`it is writable by group or others (mode ${(stat.mode & 0o777).toString(8)})`)
  } catch (err) {
    if (err instanceof PrivsepError && err.code === 'ERR_PRIVSEP_UNSAFE_MONITOR') throw err
    throw unsafe(reason(err))
  } finally {
    if (fd !== undefined) native().close(fd)
  }
}

function wrap (addon: Native): Native {
  const wrapped: Record<string, unknown> = {}
  for (const name of nativeFunctions) {
    const fn = addon[name] as (...args: unknown[]) => unknown
    wrapped[name] = (...args: unknown[]) => {
      try {
        const result = fn(...args)
        return result instanceof Promise ? result.catch((err) => { throw fromNative(err) }) : result
      } catch (err) {
        throw fromNative(err)
      }
    }
  }
  return wrapped as unknown as Native
}
