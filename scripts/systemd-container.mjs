// A real systemd for tests: this machine's own systemd (its /usr) booted in a throwaway
// systemd-nspawn container that shares the network (loopback included) and sees the checkout
// at the same path. The systemd tests use it to run the units `privsep print-service` prints.
//
//   node scripts/systemd-container.mjs start [DIR]   boot it (1-2 s), DIR read-write inside
//   node scripts/systemd-container.mjs exec CMD...   run CMD inside (systemctl, journalctl, ...)
//   node scripts/systemd-container.mjs stop          power it off
//
// Inside, / is an empty tmpfs over this machine's /usr: /etc is systemd's factory default
// (root and nobody exist), /tmp is empty. Needs root, Linux, systemd and systemd-nspawn: as
// root on Debian, `start` installs the systemd-container package when it is missing, as
// `npm start` installs what the build lacks. `unavailable()` says why it cannot run here.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const state = '/run/privsep-systemd-container'
const machine = 'privsep-test'

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).status === 0

/**
 * Why no container can be booted here (a sentence naming what is missing), or undefined when
 * one can. As root on Debian without systemd-nspawn, installs it first (at most 5 minutes).
 */
export function unavailable () {
  if (process.platform !== 'linux') return 'a systemd container needs Linux'
  if (process.getuid() !== 0) return 'a systemd container needs root'
  if (!fs.existsSync('/usr/lib/systemd/systemd') && !fs.existsSync('/lib/systemd/systemd')) {
    return 'no systemd on this machine (/usr/lib/systemd/systemd): apt-get install systemd'
  }
  if (!has('systemd-nspawn') && has('apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const install = (args) => spawnSync('apt-get', args, { env, encoding: 'utf8', timeout: 300_000 })
    const result = install(['install', '-y', '-qq', '--no-install-recommends', 'systemd-container'])
    if (result.status !== 0) install(['update', '-qq'])
    if (result.status !== 0) install(['install', '-y', '-qq', '--no-install-recommends', 'systemd-container'])
  }
  if (!has('systemd-nspawn')) return 'systemd-nspawn is missing and could not be installed: apt-get install systemd-container'
  if (!has('nsenter')) return 'nsenter is missing: apt-get install util-linux'
  return undefined
}

/** The pid of the container's systemd, while it runs. */
function leader () {
  try {
    const pid = fs.readFileSync(path.join(state, 'leader'), 'utf8').trim()
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd' ? pid : undefined
  } catch {
    return undefined
  }
}

/** The children of process `pid`. */
function children (pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)
  } catch {
    return []
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Boots the container with `dir` bound at the same path; resolves with its systemd's pid once
 * the system runs, rejects after 30 s with the console's last lines.
 */
export async function start (dir = process.cwd()) {
  const why = unavailable()
  if (why !== undefined) throw new Error(why)
  stop()
  fs.mkdirSync(state, { recursive: true, mode: 0o700 })
  const consoleLog = path.join(state, 'console.log')
  const out = fs.openSync(consoleLog, 'w')
  // cgroup v1 hybrid: systemd 252 in a container boots only with the legacy hierarchy on
  // hosts that are not on the unified one.
  const nspawn = spawn('systemd-nspawn', ['--directory=/', '--volatile=yes', '--register=no', '--keep-unit',
    `--bind=${fs.realpathSync(dir)}`, '--boot', `--machine=${machine}`, 'systemd.firstboot=off'],
  { detached: true, stdio: ['ignore', out, out], env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '0' } })
  fs.closeSync(out)
  nspawn.unref()
  fs.writeFileSync(path.join(state, 'nspawn'), String(nspawn.pid))
  let exited = false
  nspawn.once('exit', () => { exited = true })
  for (let waited = 0; waited < 30_000 && !exited; waited += 200) {
    await sleep(200)
    const systemd = children(nspawn.pid).find((pid) => {
      try { return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd' } catch { return false }
    })
    if (systemd === undefined) continue
    const running = spawnSync('nsenter', ['-t', systemd, '-a', 'systemctl', 'is-system-running', '--wait'], { encoding: 'utf8', timeout: 30_000 })
    if (/^(running|degraded)$/m.test(running.stdout)) {
      fs.writeFileSync(path.join(state, 'leader'), systemd)
      return systemd
    }
  }
  const tail = fs.readFileSync(consoleLog, 'utf8').split('\n').slice(-20).join('\n')
  stop()
  throw new Error(`the systemd container did not come up in 30 s (${exited ? 'systemd-nspawn exited' : 'still booting'}); console:\n${tail}`)
}

/** Runs `argv` inside; spawnSync's result (`input` goes to its stdin). At most 2 minutes. */
export function exec (argv, options = {}) {
  const pid = leader()
  if (pid === undefined) throw new Error('the systemd container is not running: start it first')
  return spawnSync('nsenter', ['-t', pid, '-a', ...argv], { encoding: 'utf8', timeout: 120_000, ...options })
}

/** Powers the container off (a no-op when none runs). */
export function stop () {
  const pid = leader()
  if (pid !== undefined) spawnSync('nsenter', ['-t', pid, '-a', 'systemctl', 'poweroff'], { timeout: 10_000 })
  let nspawn
  try { nspawn = Number(fs.readFileSync(path.join(state, 'nspawn'), 'utf8')) } catch { return }
  const alive = () => { try { return fs.readFileSync(`/proc/${nspawn}/comm`, 'utf8').trim() === 'systemd-nspawn' } catch { return false } }
  const until = Date.now() + 10_000
  while (alive() && Date.now() < until) spawnSync('sleep', ['0.2'])
  if (alive()) process.kill(nspawn, 'SIGKILL')
  fs.rmSync(path.join(state, 'leader'), { force: true })
  fs.rmSync(path.join(state, 'nspawn'), { force: true })
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [verb, ...rest] = process.argv.slice(2)
  if (verb === 'start') {
    start(rest[0]).then((pid) => console.log(pid), (err) => { console.error(err.message); process.exitCode = 1 })
  } else if (verb === 'exec') {
    const result = exec(rest, { stdio: 'inherit' })
    process.exitCode = result.status ?? 1
  } else if (verb === 'stop') {
    stop()
  } else {
    console.error('usage: node scripts/systemd-container.mjs start [DIR] | exec CMD... | stop')
    process.exitCode = 2
  }
}
