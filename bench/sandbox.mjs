// The kernel sandbox's cost (issue 21): start-up (launch to the first HTTP answer on a
// privileged port, as nobody) and HTTP requests per second (keep-alive clients in this
// process, for a fixed time), with the sandbox on (the default) and off (`sandbox: false`),
// side by side in one run: each round runs both, in alternating order, so machine noise hits
// both alike. Prints the medians and each ratio on/off with its 95% interval (stats.mjs).
//
// Usage (as root, after `npm run build`):
//   node bench/sandbox.mjs [rounds] [loadMs]     default 15 rounds of 1500 ms of load each
import { spawn } from 'node:child_process'
import http from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, ratio } from './stats.mjs'

const server = fileURLToPath(new URL('sandbox/server.mjs', import.meta.url))
const rounds = Number(process.argv[2] ?? 15)
const loadMs = Number(process.argv[3] ?? 1500)
const clients = 8
const ports = { on: 718, off: 719 }

if (process.getuid?.() !== 0) {
  console.error('bench/sandbox.mjs must run as root: the server binds a port below 1024 and drops to nobody')
  process.exit(1)
}
// This machine sets them; the child ignores them (secure-execution mode) but they skew start-up.
const env = { ...process.env }
delete env.NODE_EXTRA_CA_CERTS
delete env.SSL_CERT_FILE

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** One GET on `agent`: resolves true for a 200, false for nothing listening yet. */
function get (port, agent) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode === 200))
    }).on('error', (err) => err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' ? resolve(false) : reject(err))
  })
}

/** Starts the server; ms from launch to its first answer, and a function that stops it. */
async function launch (mode) {
  const started = process.hrtime.bigint()
  const child = spawn(process.execPath, [server, String(ports[mode]), mode], { env, cwd: join(server, '..'), stdio: 'ignore' })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  for (;;) {
    if (await get(ports[mode], false)) break
    if (child.exitCode !== null) throw new Error(`the ${mode} server exited (${child.exitCode}) before answering`)
    await sleep(1)
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  return { ms, stop: async () => { child.kill('SIGTERM'); await exited } }
}

/** Requests per second from `clients` keep-alive clients for `loadMs`. */
async function load (port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients })
  let done = 0
  const end = Date.now() + loadMs
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: clients }, async () => {
    while (Date.now() < end) {
      if (!await get(port, agent)) throw new Error('a request failed under load')
      done++
    }
  }))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  agent.destroy()
  return done / seconds
}

const results = { on: { startup: [], rps: [] }, off: { startup: [], rps: [] } }
for (let round = 0; round < rounds; round++) {
  for (const mode of round % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
    const { ms, stop } = await launch(mode)
    results[mode].startup.push(ms)
    results[mode].rps.push(await load(ports[mode]))
    await stop()
  }
}

console.log(`sandbox on vs off, ${rounds} rounds (alternating order), ${clients} keep-alive clients for ${loadMs} ms each, Node ${process.version}`)
console.log(`start-up ms    on ${median(results.on.startup).toFixed(1)}   off ${median(results.off.startup).toFixed(1)}   on/off ${ratio(results.on.startup, results.off.startup).text}   (target <= 1.02)`)
console.log(`requests/s     on ${median(results.on.rps).toFixed(0)}   off ${median(results.off.rps).toFixed(0)}   on/off ${ratio(results.on.rps, results.off.rps).text}   (target >= 0.98)`)
