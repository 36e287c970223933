// Upgrade benchmark: a steady loopback HTTP load (8 clients: half on keep-alive connections,
// half on a new connection per request) against the same program in three ways, each round:
//
//   steady    no upgrade
//   upgrade   three zero-downtime upgrades (SIGUSR2 to the root process, each awaited)
//   restart   a naive restart: SIGTERM, wait for the exit, start it again (what a
//             `systemctl restart` of a plain server does)
//
// For each: requests sent, failed (an error or anything but a whole 200), retried (a reused
// keep-alive connection closed as the request crossed it, sent again once, as RFC 9112 9.3.1
// allows), and the worst and p99 latency (a retried request counts from its first send). A
// failed client waits 10 ms before its next request. Ratios of the worst latency against
// steady come with 95% intervals over the rounds. Target: zero failed, worst latency of
// upgrade within 2x of steady.
//
// Usage (as root, after `npm run build`): node bench/upgrade.mjs [rounds] [seconds per run]
//   defaults 5 and 4
import { spawn } from 'node:child_process'
import http from 'node:http'
import os from 'node:os'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { median, quantile, ratio } from './stats.mjs'

const rounds = Number(process.argv[2] ?? 5)
const seconds = Number(process.argv[3] ?? 4)
const port = 99
if (process.getuid?.() !== 0) {
  console.error('bench/upgrade.mjs must run as root: the program binds port 99 and drops to nobody')
  process.exit(1)
}
const app = fileURLToPath(new URL('upgrade/app.mjs', import.meta.url))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Starts the program; resolves once its first generation is ready. */
function startApp () {
  const child = spawn(process.execPath, [app, `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'inherit'] })
  const readies = []
  const waiters = []
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith('{"ready"')) return
    const waiter = waiters.shift()
    if (waiter) waiter(); else readies.push(line)
  })
  const nextReady = () => readies.length ? Promise.resolve(readies.shift()) : new Promise((resolve) => waiters.push(resolve))
  const exited = new Promise((resolve) => child.on('exit', resolve))
  return nextReady().then(() => ({ child, nextReady, exited }))
}

/** The load, until stop(): per request its latency in ms, or a failure. */
function load () {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  const stats = { sent: 0, failed: 0, retried: 0, latencies: [] }
  let running = true
  const one = (keepAlive, started, retry = true) => new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: keepAlive ? agent : false }, (res) => {
      let body = ''
      res.on('data', (c) => { body += c }).on('end', () => resolve(res.statusCode === 200 && /^\d+ \d+\n$/.test(body)))
        .on('error', () => resolve(false))
    })
    req.on('error', (err) => {
      if (retry && req.reusedSocket && err.code === 'ECONNRESET') {
        stats.retried++
        resolve(one(keepAlive, started, false))
      } else {
        resolve(false)
      }
    })
  })
  const worker = async (keepAlive) => {
    while (running) {
      const started = performance.now()
      stats.sent++
      if (await one(keepAlive, started)) {
        stats.latencies.push(performance.now() - started)
      } else {
        stats.failed++
        await sleep(10)
      }
    }
  }
  const workers = Array.from({ length: 8 }, (_, i) => worker(i % 2 === 0))
  return { stats, stop: async () => { running = false; await Promise.all(workers); agent.destroy() } }
}

/** One run of `way` under load; the program is started before and stopped after. */
async function run (way) {
  let app = await startApp()
  await sleep(200)
  const traffic = load()
  const step = seconds * 1000 / 4
  for (let i = 1; i <= 3; i++) {
    await sleep(step)
    if (way === 'upgrade') {
      app.child.kill('SIGUSR2')
      await app.nextReady()
    } else if (way === 'restart' && i === 2) {
      app.child.kill('SIGTERM')
      await app.exited
      app = await startApp()
    }
  }
  await sleep(step)
  await traffic.stop()
  app.child.kill('SIGTERM')
  await app.exited
  const sorted = traffic.stats.latencies.sort((a, b) => a - b)
  return { sent: traffic.stats.sent, failed: traffic.stats.failed, retried: traffic.stats.retried, worst: sorted.at(-1), p99: quantile(sorted, 0.99) }
}

const ways = ['steady', 'upgrade', 'restart']
const results = Object.fromEntries(ways.map((way) => [way, []]))
for (let round = 0; round < rounds; round++) {
  const order = ways.map((_, i) => ways[(i + round) % ways.length])
  for (const way of order) results[way].push(await run(way))
}
const sum = (way, key) => results[way].reduce((total, r) => total + r[key], 0)
console.log(`upgrade: ${rounds} rounds of ${seconds} s per way, 8 clients (4 keep-alive, 4 new connection each), order rotating`)
console.log(`node ${process.version}, ${os.cpus().length} cpus`)
console.log('way       sent      failed  retried  worst ms (median of rounds)  p99 ms')
for (const way of ways) {
  const worst = results[way].map((r) => r.worst)
  console.log(`${way.padEnd(8)} ${String(sum(way, 'sent')).padStart(6)} ${String(sum(way, 'failed')).padStart(9)} ${String(sum(way, 'retried')).padStart(8)} ${median(worst).toFixed(1).padStart(10)} (max ${Math.max(...worst).toFixed(1)}) ${median(results[way].map((r) => r.p99)).toFixed(2).padStart(16)}`)
}
for (const way of ['upgrade', 'restart']) {
  console.log(`worst latency ${way}/steady: ${ratio(results[way].map((r) => r.worst), results.steady.map((r) => r.worst)).text}`)
}
