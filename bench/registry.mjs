// Registry benchmark, two parts, each against a baseline in the same run:
//  1. ns per register+unregister of a real connected socket, against a bare Map set+delete of
//     the same sockets (target: at most 2x the Map).
//  2. HTTP requests/s of a server wired with serve() (every connection registered) against the
//     same server without it, under an autocannon load on loopback (target: at least 0.98x).
//     Keep-alive (one registration per connection) and `Connection: close` (one registration
//     per request, the worst case). The server runs in its own process; variants alternate.
//
// Usage (after `npm run build`):
//   node bench/registry.mjs                 both parts
//   node bench/registry.mjs micro|http      one part
//   REGISTRY_ROUNDS=6 REGISTRY_SECONDS=5 node bench/registry.mjs http
import { fork } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import pino from 'pino'
import { ConnectionRegistry, Lifecycle, Privsep } from 'privsep'
import { median, ratio } from './stats.mjs'

const self = fileURLToPath(import.meta.url)

if (process.argv[2] === 'server') await runServer(process.argv[3])
else {
  const part = process.argv[2] ?? 'all'
  console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} CPUs, load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  if (part === 'all' || part === 'micro') await micro()
  if (part === 'all' || part === 'http') await httpLoad()
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

  const registry = new ConnectionRegistry({ registry: false })
  const map = new Map()
  const labels = [['smtp', 'public'], ['imap', 'public'], ['https', 'web']]
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
    }
  }
  const samples = { map: [], registry: [] }
  for (let round = 0; round < 40; round++) {
    for (const name of round % 2 ? ['map', 'registry'] : ['registry', 'map']) {
      const t = process.hrtime.bigint()
      variants[name]()
      const ns = Number(process.hrtime.bigint() - t) / (reps * pool)
      if (round >= 5) samples[name].push(ns) // the first rounds warm the JIT
    }
  }
  const m = median(samples.map)
  const r = median(samples.registry)
  console.log('\nregister+unregister of a real socket (median of 35 samples of 100,000 cycles)')
  console.log(`  bare Map set+delete      ${m.toFixed(1)} ns`)
  console.log(`  registry                 ${r.toFixed(1)} ns`)
  console.log(`  ratio registry/Map       ${ratio(samples.registry, samples.map).text}  (target <= 2)`)
  for (const c of clients) c.destroy()
  server.close()
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
