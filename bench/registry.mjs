// Registry benchmark, three parts, each against a baseline in the same run:
//  1. ns per register+unregister of a real connected socket (counted in the program-wide
//     metrics: accepted, closed by reason, duration), against a bare Map set+delete of the same
//     sockets (target: at most 2x the Map), and against a Map with prom-client's own metrics
//     doing the same counting (Counter inc, Counter inc, Histogram observe).
//  3. ms per scrape of a prom-client registry holding privsep's metrics with 1,000 and 10,000
//     connections registered.
//  2. HTTP requests/s of a server wired with serve() (every connection registered) against the
//     same server without it, under an autocannon load on loopback (target: at least 0.98x).
//     Keep-alive (one registration per connection) and `Connection: close` (one registration
//     per request, the worst case). The server runs in its own process; variants alternate.
//
// Usage (after `npm run build`):
//   node bench/registry.mjs                 both parts
//   node bench/registry.mjs micro|http|scrape   one part
//   REGISTRY_ROUNDS=6 REGISTRY_SECONDS=5 node bench/registry.mjs http
import { fork } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import pino from 'pino'
import promClient from 'prom-client'
import { ConnectionRegistry, Lifecycle, Privsep } from 'privsep'
import { median, ratio } from './stats.mjs'

const self = fileURLToPath(import.meta.url)

if (process.argv[2] === 'server') await runServer(process.argv[3])
else {
  const part = process.argv[2] ?? 'all'
  console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} CPUs, load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  if (part === 'all' || part === 'micro') await micro()
  if (part === 'all' || part === 'http') await httpLoad()
  if (part === 'all' || part === 'scrape') await scrape()
}

async function micro () {
  const pool = 2000
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const sockets = []
  server.on('connection', (s) => sockets.push(s))
  const clients = []
  for (let i = 0; i < pool; i += 200) { // in batches: a burst overflows the accept queue
    const batch = Array.from({ length: 200 }, () => net.connect(server.address().port, '127.0.0.1'))
    await Promise.all(batch.map((c) => new Promise((resolve) => c.once('connect', resolve))))
    clients.push(...batch)
  }
  while (sockets.length < pool) await new Promise((resolve) => setTimeout(resolve, 5))

  const labels = [['smtp', 'public'], ['imap', 'public'], ['https', 'web']]
  const registry = new ConnectionRegistry({ registry: false })
  const map = new Map()
  const promRegistry = new promClient.Registry()
  const accepted = new promClient.Counter({ name: 'a_total', help: 'a', labelNames: ['protocol', 'listener'], registers: [promRegistry] })
  const closed = new promClient.Counter({ name: 'c_total', help: 'c', labelNames: ['protocol', 'listener', 'reason'], registers: [promRegistry] })
  const duration = new promClient.Histogram({ name: 'd_seconds', help: 'd', labelNames: ['protocol', 'listener'], buckets: [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300], registers: [promRegistry] })
  const promLabels = labels.map(([protocol, listener]) => ({ protocol, listener }))
  const closedLabels = labels.map(([protocol, listener]) => ({ protocol, listener, reason: 'closed' }))
  const entry = { protocol: 'smtp', listener: 'public' }
  const reps = 50 // passes over the pool per sample: 100,000 cycles
  const variants = {
    map () {
      for (let r = 0; r < reps; r++) {
        for (let i = 0; i < pool; i++) map.set(sockets[i], entry)
        for (let i = 0; i < pool; i++) map.delete(sockets[i])
      }
    },
    registry () {
      for (let r = 0; r < reps; r++) {
        for (let i = 0; i < pool; i++) { const l = labels[i % 3]; registry.register(sockets[i], l[0], l[1]) }
        for (let i = 0; i < pool; i++) registry.unregister(sockets[i])
      }
    },
    promClient () {
      for (let r = 0; r < reps; r++) {
        for (let i = 0; i < pool; i++) { map.set(sockets[i], performance.now()); accepted.inc(promLabels[i % 3]) }
        for (let i = 0; i < pool; i++) {
          const since = map.get(sockets[i])
          map.delete(sockets[i])
          closed.inc(closedLabels[i % 3])
          duration.observe(promLabels[i % 3], (performance.now() - since) / 1000)
        }
      }
    }
  }
  const samples = { map: [], registry: [], promClient: [] }
  const orders = [['map', 'registry', 'promClient'], ['registry', 'promClient', 'map'], ['promClient', 'map', 'registry']]
  for (let round = 0; round < 40; round++) {
    for (const name of orders[round % 3]) {
      const t = process.hrtime.bigint()
      variants[name]()
      const ns = Number(process.hrtime.bigint() - t) / (reps * pool)
      if (round >= 5) samples[name].push(ns) // the first rounds warm the JIT
    }
  }
  const m = median(samples.map)
  const r = median(samples.registry)
  const p = median(samples.promClient)
  console.log('\nregister+unregister of a real socket (median of 35 samples of 100,000 cycles)')
  console.log(`  bare Map set+delete      ${m.toFixed(1)} ns`)
  console.log(`  registry (with counting) ${r.toFixed(1)} ns`)
  console.log(`  Map + prom-client        ${p.toFixed(1)} ns  (Counter inc, Counter inc, Histogram observe)`)
  console.log(`  ratio registry/Map       ${ratio(samples.registry, samples.map).text}  (target <= 2)`)
  console.log(`  ratio registry/prom      ${ratio(samples.registry, samples.promClient).text}`)
  for (const c of clients) c.destroy()
  server.close()
}

async function scrape () {
  const { PassThrough } = await import('node:stream')
  console.log('\nscrape of a registry with privsep\'s metrics (median of 30 scrapes after 5 warm-up)')
  for (const n of [1000, 10000]) {
    const promRegistry = new promClient.Registry()
    const registry = new ConnectionRegistry({ registry: promRegistry })
    const streams = Array.from({ length: n }, () => new PassThrough())
    streams.forEach((s, i) => registry.register(s, ['smtp', 'imap', 'https'][i % 3], 'public'))
    const times = []
    for (let i = 0; i < 35; i++) {
      const t = performance.now()
      await promRegistry.metrics()
      if (i >= 5) times.push(performance.now() - t)
    }
    console.log(`  ${String(n).padStart(6)} connections   ${median(times).toFixed(3)} ms`)
    for (const s of streams) registry.unregister(s)
  }
}

async function runServer (variant) {
  const body = 'hello world\n'
  const handler = (_req, res) => { res.setHeader('content-type', 'text/plain'); res.end(body) }
  const server = http.createServer(handler)
  if (variant === 'registry') {
    const privsep = new Privsep()
    privsep.filesImmediate = true
    const lc = new Lifecycle({ exit: false, registry: false, logger: pino({ level: 'warn' }) })
    await lc.serve(server, privsep.listen('tcp', '127.0.0.1:0'), { protocol: 'http', name: 'bench' })
  } else {
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  }
  process.send({ port: server.address().port })
}

async function httpLoad () {
  const rounds = Number(process.env.REGISTRY_ROUNDS ?? 6)
  const seconds = Number(process.env.REGISTRY_SECONDS ?? 5)
  for (const mode of ['keep-alive', 'close']) {
    const rps = { plain: [], registry: [] }
    for (let round = 0; round < rounds; round++) {
      for (const variant of round % 2 ? ['plain', 'registry'] : ['registry', 'plain']) {
        const child = fork(self, ['server', variant], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        const { port } = await new Promise((resolve) => child.once('message', resolve))
        const result = await autocannon({
          url: `http://127.0.0.1:${port}/`,
          connections: mode === 'close' ? 20 : 50,
          duration: seconds,
          headers: mode === 'close' ? { connection: 'close' } : {}
        })
        child.kill()
        await new Promise((resolve) => child.once('exit', resolve))
        if (result.non2xx || result.errors > result.requests.total / 100) console.log(`  (${variant}: ${result.non2xx} non-2xx, ${result.errors} errors)`)
        rps[variant].push(result.requests.average)
      }
    }
    const p = median(rps.plain)
    const r = median(rps.registry)
    console.log(`\nHTTP ${mode}, ${rounds} alternating rounds of ${seconds} s (requests/s, medians)`)
    console.log(`  without registry   ${p.toFixed(0)}   rounds: ${rps.plain.map((x) => x.toFixed(0)).join(' ')}`)
    console.log(`  with serve()       ${r.toFixed(0)}   rounds: ${rps.registry.map((x) => x.toFixed(0)).join(' ')}`)
    console.log(`  ratio with/without ${ratio(rps.registry, rps.plain).text}  (target >= 0.98)`)
  }
}
