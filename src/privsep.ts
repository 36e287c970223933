// The privilege-separation flow, after mox: the same program runs as root (binds, opens,
// spawns itself as the user) and then as that user (gets back what the parent passed).
// `Privsep` holds one process's state; src/index.ts exports the process's instance.
const fs = process.getBuiltinModule('node:fs') // not `import`: see src/index.ts
import { fromNative, PrivsepError } from './errors.js'
import { Listener, networks, type ListenOptions, type Network } from './listener.js'
import { native, type BrokerRequest, type PassedEntry } from './native.js'
import { describeSandbox, parseSandboxState, type SandboxState } from './sandbox.js'
import { checkOptions, execMonitor, forwardedSignals, runMonitor, signalNumbers, type ChildExit, type ForkExecOptions } from './monitor.js'
import { checkWindowsOptions, isElevated, startRestricted } from './windows.js'
import { programMetrics } from './program-metrics.js'

const ENV = ['PRIVSEP_PID', 'PRIVSEP_FDS', 'PRIVSEP_FILES'] as const

function isRoot (): boolean {
  return process.platform !== 'win32' && process.getuid?.() === 0
}

/** Whether the protocol variables name this process's parent: a child that has not restored yet. */
function startedByPrivsep (): boolean {
  return process.env.PRIVSEP_PID !== undefined && process.env.PRIVSEP_PID === String(process.ppid)
}

/**
 * A descriptor for reading the regular file at `path`. As root the path is resolved safely
 * (crates/core/src/paths.rs: every folder and symlink on the way root's alone, no pseudo file
 * system, the type known before the open). Otherwise Node opens it (close-on-exec), without
 * acquiring a terminal or blocking on a FIFO, and anything but a regular file is refused.
 */
function openRegularFile (path: string): number {
  if (isRoot()) return withPath(() => native().openFile(process.getBuiltinModule('node:path').resolve(path)), path)
  let fd: number, isFile: boolean
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0))
    isFile = fs.fstatSync(fd).isFile()
  } catch (err) {
    throw fromNative(err) // Node's ENOENT/EACCES, as a PrivsepError
  }
  if (!isFile) {
    fs.closeSync(fd)
    throw new PrivsepError('ERR_PRIVSEP_NOT_FILE', `openPrivileged(${path}): not a regular file`)
  }
  return fd
}

/** `open()`'s result; an error it throws names `path` (a unix socket's, say) as Node's do. */
function withPath<T> (open: () => T, path: string | undefined): T {
  try {
    return open()
  } catch (err) {
    throw path === undefined ? err : Object.assign(err as Error, { path })
  }
}

/**
 * Writes this process's pid (the monitor's, once it execs) to `file`, as root: the folder must
 * be root's and writable by nobody else, and a symlink at `file` is refused (a planted one
 * would make root write elsewhere).
 */
function writePidFile (file: string): void {
  const path = process.getBuiltinModule('node:path')
  if (typeof file !== 'string' || !path.isAbsolute(file) || file.includes('\0')) {
    throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `forkExecUnprivileged: options.pidFile must be an absolute path, not ${JSON.stringify(file)}`)
  }
  const folder = fs.statSync(path.dirname(file), { throwIfNoEntry: false })
  if (folder === undefined || !folder.isDirectory() || folder.uid !== 0 || (folder.mode & 0o022) !== 0) {
    throw Object.assign(new PrivsepError('ERR_PRIVSEP_UNSAFE_PATH',
      `forkExecUnprivileged: the pid file's folder ${path.dirname(file)} must be a folder of root's that no one else can write (such as /run or /run/NAME)`), { path: file })
  }
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o644)
  } catch (err) {
    throw fromNative(err)
  }
  try {
    fs.writeFileSync(fd, `${process.pid}\n`)
  } finally {
    fs.closeSync(fd)
  }
}

/** Closes a descriptor: on Windows a CRT descriptor of Node's, which only Node can close. */
function closeFd (fd: number): void {
  if (process.platform === 'win32') fs.closeSync(fd)
  else native().close(fd)
}

/** A socket systemd passed (socket activation). */
interface Activated {
  fd: number
  name: string
  kind: string
  address: string
  claimed: boolean
}

/** What the child got from its parent: sockets by `network address`, files by path. */
interface Passed {
  sockets: Map<string, number>
  files: Map<string, number[]>
  unclaimed: Set<number>
  /** Sockets already taken by listen(), for the error that says so. */
  claimed: Set<string>
}

/** Broker requests in flight at most: their replies and descriptors wait in the channel. */
const maxInFlight = 32

const noBroker = (what: string, why: string): PrivsepError => new PrivsepError('ERR_PRIVSEP_BROKER_CLOSED',
  `${what}: ${why}; a child started by forkExecUnprivileged asks its monitor, and with filesImmediate this process opens and binds itself`)

/**
 * Said before the hand-off when the user is `nobody`: other daemons run as nobody too, and every
 * process of a user may signal its other processes and read what of theirs is not sealed.
 */
export const sharedUserWarning = 'the child runs as user "nobody", which other daemons share: each of their processes can signal it ' +
  'and, were it not sealed, take its keys and listeners; run it as a dedicated system user instead ' +
  '(useradd --system --no-create-home --shell /usr/sbin/nologin NAME, then user: NAME)'

export class Privsep {
  /**
   * Listen and open directly in this process, without a parent or a fork: for development,
   * for running without root (ports >= 1024 or CAP_NET_BIND_SERVICE), and on Windows.
   * Default false. With it on, `forkExecUnprivileged` resolves at once without forking.
   */
  filesImmediate = false

  /** Root parent: descriptors to pass, in call order; keys of the sockets among them. */
  #kept: PassedEntry[] = []
  #listening = new Set<string>()
  #spawned = false
  /** The sockets systemd passed, once looked for (null: not yet). */
  #activated: Activated[] | undefined | null = null
  /** Under socket activation: the listeners taken from systemd, and those bound here. */
  #activation: { taken: string[], bound: string[] } = { taken: [], bound: [] }

  /**
   * Where this instance logs what a user needs to know at start (the pid to signal, which
   * listeners socket activation passed): src/index.ts gives it the lifecycle's logger.
   */
  say: ((level: 'info' | 'warn', bindings: Record<string, unknown>, message: string) => void) | undefined

  /** Under socket activation, once: which listeners systemd passed and which were bound here. */
  #logActivation (): void {
    const { taken, bound } = this.#activation
    if (taken.length + bound.length === 0) return
    this.say?.('info', { fromSystemd: taken, boundHere: bound },
      `socket activation: ${taken.length} listener(s) from systemd (${taken.join(', ') || 'none'}), ${bound.length} bound here (${bound.join(', ') || 'none'})`)
    this.#activation = { taken: [], bound: [] }
  }
  /** Child: what was restored from the parent. */
  #passed: Passed | undefined
  #sandbox: SandboxState = parseSandboxState(undefined, false)
  /** The kernel sandbox this process started in, as the fork reported it (`not applicable` outside a privsep child). */
  get sandbox (): SandboxState { return this.#sandbox }
  #watchdog: NodeJS.Timeout | undefined
  #generation = 1
  /** Child: the broker channel to the monitor, until it closes. */
  #channel: number | undefined
  #requests = 0
  /** Broker requests in flight, and those waiting for one of the `maxInFlight` places. */
  #inFlight = 0
  #waiting: Array<() => void> = []
  /** The channel broke: it is closed once nothing is in flight on it. */
  #broken: number | undefined

  #mode (what: string): 'parent' | 'child' | 'immediate' {
    if (this.#passed) return 'child'
    if (this.filesImmediate) return 'immediate'
    if (process.platform === 'win32') return this.#windowsMode(what)
    // Socket activation without root (User= in the unit): nothing to drop, no monitor.
    if (this.#adoptActivated() !== undefined && !isRoot()) return 'immediate'
    if (isRoot()) {
      if (this.#spawned) throw new PrivsepError('ERR_PRIVSEP_STATE', `${what}: forkExecUnprivileged was already called in this process`)
      return 'parent'
    }
    if (startedByPrivsep()) {
      throw new PrivsepError('ERR_PRIVSEP_NO_PASSED_FILES',
        `${what}: this process is the unprivileged child of a privsep parent (PRIVSEP_PID=${process.ppid}), ` +
        'but restorePassedFiles() was not called yet: call it first thing in the child, before any listen or openPrivileged')
    }
    throw new PrivsepError('ERR_PRIVSEP_NO_PASSED_FILES',
      `${what}: this process is not root and was not started by a privsep parent; ` +
      'start the program as root (it drops to the configured user itself), call restorePassedFiles() first in the child, ' +
      'or set filesImmediate for development without root')
  }

  /**
   * Windows: an elevated process is a parent (it keeps what it opens for a restricted child);
   * a child that has not restored yet is told to; anything else opens in-process.
   */
  #windowsMode (what: string): 'parent' | 'immediate' {
    if (startedByPrivsep()) {
      throw new PrivsepError('ERR_PRIVSEP_NO_PASSED_FILES',
        `${what}: this process is the restricted child of a privsep parent (PRIVSEP_PID=${process.ppid}), ` +
        'but restorePassedFiles() was not called yet: call it first thing in the child, before any listen or openPrivileged')
    }
    if (!isElevated()) return 'immediate'
    if (this.#spawned) throw new PrivsepError('ERR_PRIVSEP_STATE', `${what}: forkExecUnprivileged was already called in this process`)
    return 'parent'
  }

  /**
   * A listening socket for `network` and `address` (`ip:port`, `[ip6]:port`, `:port`, or a
   * unix socket path). The root parent binds it now and keeps it for the child; the child
   * gets the one its parent passed; with filesImmediate it is bound here.
   */
  listen (network: Network, address: string, options: ListenOptions = {}): Listener {
    if (!networks.includes(network)) {
      throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `unknown network ${JSON.stringify(network)}: use ${networks.join(', ')}`)
    }
    const backlog = options.backlog ?? 511
    if (!Number.isInteger(backlog) || backlog < 0) {
      throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `backlog must be a non-negative integer, not ${backlog}`)
    }
    const fileMode = options.mode
    if (fileMode !== undefined && (network !== 'unix' || !Number.isInteger(fileMode) || fileMode < 0 || fileMode > 0o777)) {
      throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `mode is for unix sockets only, an integer from 0 to 0o777, not ${String(fileMode)}`)
    }
    const addr = native().parseAddress(network, address)
    const key = `${network} ${addr}`
    const mode = this.#mode(`listen(${key})`)
    // Windows: Node binds it itself, in whichever process serves (the child, after a hand-off).
    if (process.platform === 'win32') return new Listener(network, addr, undefined)
    if (mode === 'child') return new Listener(network, addr, this.#claimSocket(key))
    const activated = this.#adoptActivated()
    // Under socket activation a listener systemd passed is taken; one it did not pass (a
    // .socket unit that lists some of the program's listeners) is bound here as usual,
    // unless the program asked for it by its FileDescriptorName.
    const fromSystemd = activated === undefined ? undefined : this.#claimStored(activated, network, addr) ?? this.#claimActivated(activated, network, addr, options.name)
    if (fromSystemd !== undefined) {
      this.#activation.taken.push(key)
      if (mode === 'immediate') return new Listener(network, addr, fromSystemd)
      this.#kept.push([fromSystemd, network, addr])
      return new Listener(network, addr, -1)
    }
    if (activated !== undefined) this.#activation.bound.push(key)
    // Port 0 binds a fresh port each time; only a parent must refuse a second one, since its
    // child could not tell the two apart.
    const anyPort = network !== 'unix' && addr.endsWith(':0')
    if (this.#listening.has(key) && (mode === 'parent' || !anyPort)) {
      throw new PrivsepError('ERR_PRIVSEP_ALREADY_LISTENING', `listen(${key}) was already called in this process`)
    }
    const fd = withPath(() => native().listen(network, addr, backlog, fileMode), network === 'unix' ? addr : undefined)
    this.#listening.add(key)
    if (mode === 'immediate') return new Listener(network, addr, fd)
    this.#store(fd, network, addr)
    this.#kept.push([fd, network, addr])
    return new Listener(network, addr, -1)
  }

  /**
   * A file descriptor, owned by the caller, for reading the root-only file at `path`. The
   * parent opens it twice (one for itself, one kept for the child: separate offsets); the
   * child gets its parent's descriptors for `path` in call order.
   */
  openPrivileged (path: string): number {
    if (typeof path !== 'string' || path === '' || path.includes('\0')) {
      throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `openPrivileged needs a file path, not ${JSON.stringify(path)}`)
    }
    // Absolute from here on: the monitor opens the file again by this path for each new
    // generation, and refuses a relative one. The child resolves it the same way, against its
    // own current folder (the parent's, unless the option cwd says otherwise).
    path = process.getBuiltinModule('node:path').resolve(path)
    const mode = this.#mode(`openPrivileged(${path})`)
    if (mode === 'child') return this.#claimFile(path)
    const fd = openRegularFile(path)
    if (mode === 'immediate') return fd
    try {
      this.#kept.push([openRegularFile(path), 'file', path])
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
    return fd
  }

  /**
   * In the child: reads, validates and takes over what the parent passed, then removes the
   * protocol variables from `process.env`. As root or with filesImmediate and nothing
   * passed, does nothing; otherwise, with nothing passed, throws with a hint.
   */
  restorePassedFiles (): void {
    if (this.#passed) return
    // privsep's child never runs as root: in a root process these variables were crafted or
    // leaked, and taking the child role would trust descriptors nobody vetted.
    if (process.platform !== 'win32' && (process.getuid?.() === 0 || process.geteuid?.() === 0) && ENV.some((name) => process.env[name] !== undefined)) {
      throw new PrivsepError('ERR_PRIVSEP_ROOT_CHILD',
        `restorePassedFiles(): this process runs as root but carries ${ENV.filter((name) => process.env[name] !== undefined).join(', ')}; ` +
        "privsep's child never runs as root, so nothing is taken: unset them, and start the program as root without them")
    }
    const restored = native().restore(process.env.PRIVSEP_PID, process.env.PRIVSEP_FDS, process.env.PRIVSEP_FILES, process.ppid)
    if (restored === null) {
      this.#mode('restorePassedFiles()')
      return
    }
    const [entries, channel] = restored
    this.#channel = channel ?? undefined
    // The monitor numbers each generation it starts (docs/PROTOCOL.md); taken, then unset.
    const generation = Number(process.env.PRIVSEP_GENERATION)
    if (Number.isInteger(generation) && generation > 0) this.#generation = generation
    delete process.env.PRIVSEP_GENERATION
    // The metrics region, right after the channel (docs/PROTOCOL.md): mapped, then its fd closed.
    const metrics = programMetrics()
    metrics.generation = this.#generation
    if (channel !== null && channel !== undefined) {
      const region = native().metricsRegion(channel + 1)
      if (region !== null) {
        closeFd(channel + 1)
        if (!metrics.attach(region)) {
          this.say?.('warn', { generation: this.#generation }, 'the metrics region holds another layout (or counting started before restorePassedFiles): this generation counts its metrics alone')
        }
      }
    }
    for (const name of ENV) delete process.env[name]
    // What the fork enforced (docs/PROTOCOL.md, "The sandbox"), said once; then unset.
    this.#sandbox = parseSandboxState(process.env.PRIVSEP_SANDBOX, true)
    delete process.env.PRIVSEP_SANDBOX
    this.say?.(['full', 'not applicable'].includes(this.#sandbox.state) ? 'info' : 'warn', { sandbox: this.#sandbox }, describeSandbox(this.#sandbox))
    const passed: Passed = { sockets: new Map(), files: new Map(), unclaimed: new Set(), claimed: new Set() }
    for (const [fd, kind, value] of entries) {
      passed.unclaimed.add(fd)
      if (kind !== 'file') {
        passed.sockets.set(`${kind} ${value}`, fd)
      } else {
        passed.files.set(value, [...(passed.files.get(value) ?? []), fd])
      }
    }
    this.#passed = passed
    if (process.platform === 'linux') this.#applyExtraCaCerts()
  }

  /**
   * In a child on Linux: `NODE_EXTRA_CA_CERTS` as Node applies it at start, which it skipped:
   * the child starts in secure-execution mode (see `spawn::exec_gid`), where Node ignores the
   * variable. Root set it, so it is trusted here. Node 22.19 and later take it through
   * `tls.setDefaultCACertificates`; older ones cannot, which is said once.
   */
  #applyExtraCaCerts (): void {
    const file = process.env.NODE_EXTRA_CA_CERTS
    if (file === undefined || file === '') return
    const tls = process.getBuiltinModule('node:tls') as typeof import('node:tls') & {
      setDefaultCACertificates?: (certs: string[]) => void
      getCACertificates?: (type: 'default') => string[]
    }
    if (tls.setDefaultCACertificates === undefined || tls.getCACertificates === undefined) {
      this.say?.('warn', { file }, `NODE_EXTRA_CA_CERTS (${file}) is not applied in the child: it starts in secure-execution mode, ` +
        `where Node ignores it, and Node ${process.version} cannot add certificates later (22.19 can): pass them as ca to tls.connect or an https.Agent`)
      return
    }
    try {
      const extra = fs.readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []
      tls.setDefaultCACertificates([...tls.getCACertificates('default'), ...extra])
    } catch (err) {
      this.say?.('warn', { file, err }, `NODE_EXTRA_CA_CERTS (${file}) is not applied in the child: ${(err as Error).message}`)
    }
  }

  /** In the child: closes every passed (or activated) descriptor that no listen/openPrivileged claimed. */
  cleanupPassedFiles (): void {
    this.#logActivation()
    for (const socket of this.#activated ?? []) {
      if (!socket.claimed) native().close(socket.fd)
      socket.claimed = true
    }
    const passed = this.#passed
    if (!passed) return
    for (const fd of passed.unclaimed) closeFd(fd)
    passed.unclaimed.clear()
    passed.sockets.clear()
    passed.files.clear()
  }

  /**
   * In the root parent: checks the options, the user and that the user can read the
   * program, flushes the logs (`beforeHandOff`), then hands everything listened and opened
   * so far to privsep-monitor, which this process becomes (exec, same pid): the monitor
   * starts this same program as `options.user`, forwards signals and ends the way the child
   * ends, so the promise never resolves. With `exit: false` the monitor runs as a child and
   * the promise resolves with how the program ended; with filesImmediate, at once with
   * `inProcess: true`.
   */
  async forkExecUnprivileged (options: ForkExecOptions): Promise<ChildExit> {
    checkOptions(options)
    if (this.filesImmediate) return { code: null, signal: null, inProcess: true }
    if (process.platform === 'win32') return await this.#forkExecWindows(options)
    if (this.#passed || !isRoot()) {
      const who = this.#passed || startedByPrivsep()
        ? `this process is the unprivileged child privsep started (uid ${process.getuid?.()}); only its root parent calls forkExecUnprivileged, and that already happened`
        : `this process runs as uid ${process.getuid?.()}, not as root; start the program as root (uid 0) and it drops to options.user itself`
      throw new PrivsepError('ERR_PRIVSEP_NOT_ROOT', `forkExecUnprivileged: ${who}`)
    }
    this.#mode('forkExecUnprivileged()')
    const signals = signalNumbers(options)
    if (options.pidFile !== undefined) writePidFile(options.pidFile)
    this.#logActivation()
    if (options.user === 'nobody') this.say?.('warn', { user: options.user }, sharedUserWarning)
    const upgrade = options.upgradeSignal === null ? '' : `, ${options.upgradeSignal ?? 'SIGUSR2'} upgrades (privsep reload --pid ${process.pid})`
    this.say?.('info', { pid: process.pid, pidFile: options.pidFile },
      `the pid to signal is ${process.pid} (this process${options.exit === false ? '' : ', which becomes privsep-monitor'}): SIGTERM stops${upgrade}; ` +
      `${(options.signals ?? forwardedSignals).join(', ')} reach the program`)
    this.#settleStore(options)
    const kept = this.#kept
    if (options.exit === false) {
      const ended = runMonitor(kept, options, signals) // throws here when refused
      this.#handedOff()
      return await ended
    }
    // Logs written asynchronously would be lost in the exec; without a logger there is
    // nothing to wait for, and the exec happens before any other JavaScript can run.
    const flushing = this.beforeHandOff?.()
    if (flushing !== undefined) await flushing
    execMonitor(kept, options, signals)
  }

  /** Windows: the restricted child (src/windows.ts); this process only waits for it. */
  async #forkExecWindows (options: ForkExecOptions): Promise<ChildExit> {
    checkWindowsOptions(options)
    if (this.#passed || startedByPrivsep()) {
      throw new PrivsepError('ERR_PRIVSEP_NOT_ROOT',
        'forkExecUnprivileged: this process is the restricted child privsep started; only its elevated parent calls forkExecUnprivileged, and that already happened')
    }
    if (!isElevated()) {
      throw new PrivsepError('ERR_PRIVSEP_NOT_ROOT',
        'forkExecUnprivileged: this process is not elevated (its token does not have Administrators enabled), so it has nothing to drop; ' +
        'run it as administrator and it starts the program as a restricted child itself, or set filesImmediate = true to run in this process')
    }
    this.#mode('forkExecUnprivileged()')
    if (options.exit !== false) {
      const flushing = this.beforeHandOff?.()
      if (flushing !== undefined) await flushing
    }
    return await startRestricted(this.#kept, options, () => { this.#handedOff() })
  }

  /**
   * Called before this process becomes the monitor: src/index.ts flushes the process's
   * lifecycle logger here, when one was created.
   */
  beforeHandOff: (() => Promise<void> | undefined) | undefined

  /** After the hand-off: this process's copies are closed; no more listen/open/fork. */
  #handedOff (): void {
    for (const [fd] of this.#kept) closeFd(fd)
    this.#kept = []
    this.#spawned = true
  }

  /**
   * In the child: a descriptor for reading `path`, opened by the monitor now, if the policy
   * allows it (what the root process opened, or `allow.files` / `allow.folders`): a renewed key
   * at the same path, say. Requests may overlap; they are answered in order. With
   * filesImmediate, opened here as `openPrivileged` opens.
   */
  async requestFile (path: string): Promise<number> {
    if (typeof path !== 'string' || path === '' || path.includes('\0')) {
      throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `requestFile needs a file path, not ${JSON.stringify(path)}`)
    }
    const absolute = process.getBuiltinModule('node:path').resolve(path)
    if (this.#brokerless()) return openRegularFile(absolute)
    try {
      return await this.#ask(`requestFile(${absolute})`, ['file', absolute])
    } catch (err) {
      throw Object.assign(err as Error, { path: absolute })
    }
  }

  /**
   * In the child: the listener for `network` and `address` from the monitor, if the policy
   * allows it: one it holds (what the root process bound, the same socket again) or one
   * `allow.listeners` names, which it binds now. With filesImmediate, bound here.
   */
  async requestListener (network: Network, address: string, options: ListenOptions = {}): Promise<Listener> {
    if (!networks.includes(network)) {
      throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `unknown network ${JSON.stringify(network)}: use ${networks.join(', ')}`)
    }
    const addr = native().parseAddress(network, address)
    const backlog = options.backlog ?? 511
    if (this.#brokerless()) return new Listener(network, addr, native().listen(network, addr, backlog, options.mode))
    const fd = await this.#ask(`requestListener(${network} ${addr})`, ['listener', network, addr, backlog, options.mode])
    return new Listener(network, addr, fd)
  }

  /**
   * Tells systemd the program is ready (`READY=1`), once its servers listen: the monitor sends
   * it (it is the main process), or this process when there is no monitor and systemd set
   * `NOTIFY_SOCKET`; otherwise nothing happens. With `WATCHDOG_USEC` set, it then sends
   * `WATCHDOG=1` at half that interval while the event loop runs.
   */
  async ready (): Promise<void> {
    await this.notify('READY=1')
    const usec = Number(process.env.WATCHDOG_USEC)
    if (this.#watchdog === undefined && Number.isInteger(usec) && usec > 0) {
      this.#watchdog = setInterval(() => { void this.notify('WATCHDOG=1') }, Math.max(1, Math.floor(usec / 2000)))
      this.#watchdog.unref()
    }
  }

  /**
   * In a privsep child: asks the monitor to start a new generation of the program (as on disk
   * now), which takes over once it calls `ready()`; this one then gets SIGTERM and drains.
   * The same as the upgrade signal (default SIGUSR2) to the root process.
   */
  async upgrade (): Promise<void> {
    if (this.#passed === undefined) throw noBroker('upgrade()', 'this process was not started by a privsep monitor')
    await this.#ask('upgrade()', ['upgrade'])
  }

  /** Which generation of the program this process is: 1, then one more per upgrade. */
  get generation (): number {
    return this.#generation
  }

  /**
   * Sends one systemd notification (`READY=1`, `STATUS=…`, `STOPPING=1`, `RELOADING=1`,
   * `WATCHDOG=1`): through the monitor in a privsep child, directly without one. Best effort:
   * without systemd, or without a channel, nothing is sent and nothing is thrown.
   */
  async notify (state: string): Promise<void> {
    if (typeof state !== 'string' || state.includes('\n')) {
      throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `notify takes one KEY=value line, not ${JSON.stringify(state)}`)
    }
    if (this.#passed !== undefined) {
      if (this.#channel !== undefined) await this.#ask(`notify(${state})`, ['notify', state]).catch(() => {})
      return
    }
    const socket = process.env.NOTIFY_SOCKET
    if (socket !== undefined && socket !== '' && process.platform !== 'win32') native().notify(socket, state)
  }

  /** True where this process opens and binds itself (filesImmediate); throws where no broker is. */
  #brokerless (): boolean {
    if (this.#passed === undefined && (this.filesImmediate || process.platform === 'win32')) return true
    if (this.#passed === undefined) throw noBroker('no broker', 'this process was not started by a privsep monitor')
    return false
  }

  /**
   * One request to the monitor. Up to `maxInFlight` go out at once and their replies come
   * back in order; a broken channel is closed for good, once nothing is in flight on it.
   */
  async #ask (what: string, request: BrokerRequest): Promise<number> {
    if (this.#inFlight >= maxInFlight) await new Promise<void>((resolve) => this.#waiting.push(resolve))
    this.#inFlight++
    try {
      const channel = this.#channel
      if (channel === undefined) throw noBroker(what, 'the broker channel is closed')
      try {
        const fd = await native().brokerRequest(channel, ++this.#requests, request)
        programMetrics().brokerRequest(request[0], 'ok')
        return fd
      } catch (err) {
        const code = (err as { code?: string }).code
        const broken = code === 'ERR_PRIVSEP_BROKER_CLOSED' || code === 'ERR_PRIVSEP_BROKER_MALFORMED' || code === 'EPIPE' || code === 'ECONNRESET'
        programMetrics().brokerRequest(request[0], broken ? 'closed' : code === 'ERR_PRIVSEP_DENIED' ? 'denied' : 'failed')
        if (broken) {
          this.#channel = undefined
          this.#broken = channel
        }
        throw err
      }
    } finally {
      this.#inFlight--
      if (this.#inFlight === 0 && this.#broken !== undefined) {
        native().close(this.#broken)
        this.#broken = undefined
      }
      this.#waiting.shift()?.()
    }
  }

  /**
   * The sockets systemd passed (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`), taken once, the
   * variables then unset so that nothing started later sees them; undefined without them.
   */
  #adoptActivated (): Activated[] | undefined {
    if (this.#activated === null) {
      const { LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES } = process.env
      const rows = native().activated(LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, process.pid)
      for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) delete process.env[name]
      this.#activated = rows?.map(([fd, name, kind, address]) => ({ fd, name, kind, address, claimed: false }))
    }
    return this.#activated
  }

  /**
   * The activated socket for `network addr` (and `name`, if given), claimed; undefined when
   * systemd passed none for it and no name was asked for (the caller binds it).
   */
  #claimActivated (activated: Activated[], network: Network, addr: string, name: string | undefined): number | undefined {
    const found = activated.find((a) => !a.claimed && (name === undefined || a.name === name) && native().matches(a.fd, network, addr))
    if (found === undefined && name === undefined) return undefined
    if (found === undefined) {
      const passed = activated.map((a) => `${a.name} (fd ${a.fd}, ${a.kind} ${a.address}${a.claimed ? ', claimed' : ''})`).join('; ') || 'none'
      throw new PrivsepError('ERR_PRIVSEP_NOT_ACTIVATED',
        `listen(${network} ${addr}, name ${name}): systemd passed no socket of that name for this address (passed: ${passed}); ` +
        'add it to the .socket unit (FileDescriptorName=), or leave out the name to bind it here')
    }
    found.claimed = true
    return found.fd
  }

  /**
   * systemd's file descriptor store, when this process may use it (docs/PROTOCOL.md, "The file
   * descriptor store"): `NOTIFY_SOCKET`, and `FDSTORE`, the store's size, set (systemd 254 sets
   * it from FileDescriptorStoreMax=; the unit print-service prints sets it too).
   */
  #fdStore (): { socket: string, limit: number } | undefined {
    const socket = process.env.NOTIFY_SOCKET
    const limit = Number(process.env.FDSTORE)
    if (process.platform !== 'linux' || socket === undefined || socket === '' || !Number.isInteger(limit) || limit <= 0) return undefined
    return { socket, limit }
  }

  /** Listeners this process sent to the store. */
  #stored = 0

  /**
   * In the root parent, right after `fd` is bound: kept in systemd's store too, so that it
   * outlives a crash of the monitor (a full store is said, never silent).
   */
  #store (fd: number, network: Network, addr: string): void {
    const store = this.#fdStore()
    if (store === undefined) return
    const name = native().storeName(network, addr)
    const why = name === null
      ? `its name is longer than systemd's 255 characters`
      : this.#stored >= store.limit ? `the store holds ${store.limit} already (FDSTORE=${store.limit}, FileDescriptorStoreMax=); raise both to the number of listeners` : undefined
    if (why !== undefined || name === null) {
      const message = `ERR_PRIVSEP_FDSTORE_FULL: listen(${network} ${addr}) is not kept in systemd's file descriptor store: ${why ?? ''}; a crash of the monitor refuses its clients until the next start`
      if (this.say !== undefined) this.say('warn', { code: 'ERR_PRIVSEP_FDSTORE_FULL', listener: `${network} ${addr}` }, message)
      else process.emitWarning(message, { code: 'ERR_PRIVSEP_FDSTORE_FULL' })
      return
    }
    native().fdStore(store.socket, name, fd)
    this.#stored++
  }

  /**
   * The listener systemd's store gave back for `network addr` (by its store name), validated
   * as socket activation validates, and claimed; one under that name that is not that socket
   * is closed and removed from the store (then bound afresh).
   */
  #claimStored (activated: Activated[], network: Network, addr: string): number | undefined {
    const name = native().storeName(network, addr)
    const found = activated.find((a) => !a.claimed && name !== null && a.name === name)
    if (found === undefined) return undefined
    found.claimed = true
    // A unix socket's file may be gone (the monitor removes it when it ends): unreachable, so bound afresh.
    const reachable = network !== 'unix' || fs.statSync(addr, { throwIfNoEntry: false })?.isSocket() === true
    if (reachable && native().matches(found.fd, network, addr)) {
      this.#stored++
      return found.fd
    }
    this.#unstore(found, `is not the socket listen(${network} ${addr}) declares (${found.kind} ${found.address})`)
    return undefined
  }

  /** Closes a stored descriptor and removes its name from systemd's store. */
  #unstore (stored: Activated, why: string): void {
    native().close(stored.fd)
    const store = this.#fdStore()
    if (store !== undefined) native().fdStore(store.socket, stored.name, null)
    this.say?.('info', { name: stored.name }, `systemd's file descriptor store held ${JSON.stringify(stored.name)}, which ${why}: removed`)
  }

  /**
   * At the hand-off: a stored listener that `allow.listeners` names goes to the monitor, which
   * gives it to the child that asks; any other the store gave back and no listen() declared
   * is removed from the store (FDSTOREREMOVE=1).
   */
  #settleStore (options: ForkExecOptions): void {
    const allowed = new Map((options.allow?.listeners ?? []).map(([network, address]) => {
      const addr = native().parseAddress(network, address)
      return [native().storeName(network, addr), [network, addr] as const]
    }))
    for (const a of this.#activated ?? []) {
      if (a.claimed || !networks.some((network) => a.name.startsWith(`${network} `))) continue
      a.claimed = true
      const declared = allowed.get(a.name)
      if (declared !== undefined && native().matches(a.fd, declared[0], declared[1])) {
        this.#stored++
        this.#kept.push([a.fd, declared[0], declared[1]])
      } else {
        this.#unstore(a, 'the program no longer declares')
      }
    }
  }

  #claimSocket (key: string): number {
    const passed = this.#passed as Passed
    const fd = passed.sockets.get(key)
    if (fd === undefined && passed.claimed.has(key)) {
      throw new PrivsepError('ERR_PRIVSEP_ALREADY_LISTENING',
        `listen(${key}): the socket the parent passed for this address was already claimed by an earlier listen() in this process; use that Listener`)
    }
    if (fd === undefined) {
      throw new PrivsepError('ERR_PRIVSEP_NOT_PASSED',
        `listen(${key}): the parent passed no such socket; passed: ${[...passed.sockets.keys()].join('; ') || 'none'}`)
    }
    passed.sockets.delete(key)
    passed.claimed.add(key)
    passed.unclaimed.delete(fd)
    return fd
  }

  #claimFile (path: string): number {
    const passed = this.#passed as Passed
    const fd = passed.files.get(path)?.shift()
    if (fd === undefined) {
      throw new PrivsepError('ERR_PRIVSEP_NOT_PASSED',
        `openPrivileged(${path}): the parent passed no (further) descriptor for this path`)
    }
    passed.unclaimed.delete(fd)
    return fd
  }
}
