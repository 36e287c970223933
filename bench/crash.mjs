// What a crash of the monitor costs (issue 23): the demo under ~100 new HTTPS connections a
// second (__test__/fixtures/https-stream.mjs, each given 5 s), its monitor killed with
// SIGKILL once a round, in three set-ups:
//   store:    the unit print-service prints, in the real systemd (scripts/systemd-container.mjs);
//   no-store: the same unit without FDSTORE= (nothing stored; systemd restarts it all the same);
//   plain:    no systemd, no outside holder: a shell loop starts the demo again at once.
// Per round: connections refused or reset (or timed out), and the time from the kill to the
// next generation's first answer. Prints the medians, ranges, and the ratio of the times to
// first answer (bench/stats.mjs). Run as root: node bench/crash.mjs [ROUNDS=5]
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as container from '../scripts/systemd-container.mjs'
import { median, ratio } from './stats.mjs'

const root = path.join(import.meta.dirname, '..')
const rounds = Number(process.argv[2] ?? 5)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
delete process.env.NODE_EXTRA_CA_CERTS
delete process.env.SSL_CERT_FILE
const [smtp, https, metrics] = [881, 882, 883]
const demo = ['node', path.join(root, 'examples', 'demo.mjs'), '--smtp-port', String(smtp), '--https-port', String(https), '--metrics-port', String(metrics)]
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-crash-'))

function stream (ms) {
  const child = spawn(process.execPath, [path.join(root, '__test__', 'fixtures', 'https-stream.mjs'), String(https), String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (c) => { out += c })
  return new Promise((resolve) => child.on('exit', () => resolve(JSON.parse(out))))
}

/** One round: the stream for 4 s, `kill` at 1 s; what failed, and the next generation's first answer. */
async function round (kill) {
  const running = stream(4000)
  await sleep(1000)
  const t = Date.now()
  kill()
  const results = await running
  const before = new Set(results.filter(([start]) => start < t).map(([, , , pid]) => pid))
  const first = Math.min(...results.filter(([start, , outcome, pid]) => start >= t && outcome === 'ok' && !before.has(pid)).map(([, end]) => end - t))
  return { failed: results.filter(([, , outcome]) => outcome !== 'ok').length, sent: results.length, first }
}

async function underSystemd (withStore) {
  const inside = (...argv) => container.exec(argv)
  const unitName = 'privsep-crash.service'
  let unit = execFileSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'print-service', '--user', 'privsep-demo',
    '--runtime-directory', 'privsep-crash', '--', ...demo, '--dir', '/run/privsep-crash'], { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  if (!withStore) unit = unit.replace(/^Environment=FDSTORE=.*\n/m, '')
  container.exec(['sh', '-c', `cat > /etc/systemd/system/${unitName}`], { input: unit })
  inside('systemctl', 'daemon-reload')
  inside('systemctl', 'start', unitName)
  await sleep(1000)
  const main = Number(inside('systemctl', 'show', '-p', 'MainPID', '--value', unitName).stdout.trim())
  if (!(main > 1)) throw new Error(`${unitName} did not start:\n${inside('journalctl', '-u', unitName, '--no-pager', '-n', '15').stdout}`)
  const result = await round(() => inside('kill', '-9', String(main)))
  await sleep(1500)
  inside('systemctl', 'stop', unitName)
  return result
}

async function plain () {
  const dir = path.join(tmp, 'plain')
  const loop = spawn('sh', ['-c', `while :; do "$@"; done`, 'loop', process.execPath, ...demo.slice(1), '--dir', dir], { stdio: 'ignore', detached: true })
  await sleep(2000)
  // The demo's root process (the monitor after the hand-off) is the loop's child.
  const monitor = () => {
    const pid = Number(spawnSync('pgrep', ['-P', String(loop.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0])
    if (!(pid > 1)) throw new Error(`no demo under the loop (pid ${loop.pid})`)
    return pid
  }
  const result = await round(() => process.kill(monitor(), 'SIGKILL'))
  await sleep(1500)
  process.kill(-loop.pid, 'SIGKILL')
  try { process.kill(monitor(), 'SIGTERM') } catch {}
  await sleep(1500)
  return result
}

const why = container.unavailable()
if (why !== undefined) throw new Error(why)
await container.start(root)
const runs = { store: [], 'no-store': [], plain: [] }
try {
  container.exec(['sh', '-c', 'mkdir -p /etc/ssl && cat > /etc/ssl/openssl.cnf'], { input: fs.readFileSync('/etc/ssl/openssl.cnf') })
  container.exec(['useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'privsep-demo'])
  for (let r = 0; r < rounds; r++) {
    runs.store.push(await underSystemd(true))
    runs['no-store'].push(await underSystemd(false))
  }
} finally {
  container.stop()
}
for (let r = 0; r < rounds; r++) runs.plain.push(await plain())
fs.rmSync(tmp, { recursive: true, force: true })

console.log(`${rounds} rounds, one kill -9 of the monitor each, ~100 new HTTPS connections a second`)
for (const [name, list] of Object.entries(runs)) {
  const failed = list.map((r) => r.failed)
  const first = list.map((r) => r.first)
  console.log(`${name.padEnd(9)} refused or reset per crash: median ${median(failed)} (${Math.min(...failed)}-${Math.max(...failed)}) of ~${Math.round(median(list.map((r) => r.sent)))}; ` +
    `next generation's first answer: median ${Math.round(median(first))} ms (${Math.min(...first)}-${Math.max(...first)})`)
}
const time = (name) => runs[name].map((r) => r.first)
console.log(`first answer, store / no-store: ${ratio(time('store'), time('no-store')).text}`)
console.log(`first answer, store / plain:    ${ratio(time('store'), time('plain')).text}`)
