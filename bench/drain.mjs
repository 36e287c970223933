// Drain benchmark: time from the start of the force-close phase to "no connection left", for
// 1,000 and 10,000 open HTTP connections that each have a request in flight (the handler never
// answers: the connections a graceful stop cannot close), against http-terminator and
// stoppable on the same kind of sockets in the same run. Target: faster than both.
//
//   privsep          connections.shutdown(), then await connections.done()
//   http-terminator  createHttpTerminator({ server, gracefulTerminationTimeout: 0 }).terminate()
//   stoppable        stoppable(server, 0).stop(callback)
//
// Two end points per run, both from the same start:
//   own     the tool's own "done" (privsep: done(); the peers: server.close's callback, which
//           Node calls once every socket has been *destroyed*, before their fds are closed)
//   closed  every server-side socket has emitted 'close' (its fd is closed), seen by a
//           listener the harness adds for every variant alike
// privsep's done() waits for 'close', so for it both are the same moment.
//
// The clients live in a child process, so their side of each close is not in the timed loop.
// Variants alternate, rotating order each round; prints medians and ratios.
//
// Usage (after `npm run build`):  node bench/drain.mjs [rounds]     default 5
//   DRAIN_VARIANTS=privsep,stoppable node bench/drain.mjs            a subset
import { fork } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { createHttpTerminator } from 'http-terminator'
import pino from 'pino'
import { Lifecycle, Privsep } from 'privsep'
import stoppable from 'stoppable'
import { median, ratio } from './stats.mjs'

const self = fileURLToPath(import.meta.url)

/** Child: opens connections on request, each with one request in flight; reports when all closed. */
function holdClients () {
  let sockets = []
  process.on('message', async ({ port, count }) => {
    sockets = []
    for (let done = 0; done < count; done += 250) {
      const batch = Array.from({ length: Math.min(250, count - done) }, () => {
        const s = net.connect(port, '127.0.0.1')
        s.on('error', () => {})
        s.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n')
        return s
      })
      await Promise.all(batch.map((s) => new Promise((resolve) => s.once('connect', resolve))))
      sockets.push(...batch)
    }
    process.send({ opened: sockets.length })
    await Promise.all(sockets.map((s) => new Promise((resolve) => s.destroyed ? resolve() : s.once('close', resolve))))
    process.send({ closed: sockets.length })
  })
}

const variants = {
  async privsep (server, count, opened) {
    const privsep = new Privsep()
    privsep.filesImmediate = true
    const lc = new Lifecycle({ exit: false, registry: false, logger: pino({ level: 'warn' }) })
    await lc.serve(server, privsep.listen('tcp', '127.0.0.1:0'), { protocol: 'http', name: 'bench' })
    await opened(server.address().port, count)
    const t = process.hrtime.bigint()
    lc.connections.shutdown()
    await lc.connections.done()
    const own = process.hrtime.bigint()
    server.close()
    return { t, own }
  },
  async 'http-terminator' (server, count, opened) {
    const terminator = createHttpTerminator({ server, gracefulTerminationTimeout: 0 })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    await opened(server.address().port, count)
    const t = process.hrtime.bigint()
    await terminator.terminate()
    return { t, own: process.hrtime.bigint() }
  },
  async stoppable (server, count, opened) {
    stoppable(server, 0)
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    await opened(server.address().port, count)
    const t = process.hrtime.bigint()
    await new Promise((resolve) => server.stop(resolve))
    return { t, own: process.hrtime.bigint() }
  }
}

async function main () {
  const rounds = Number(process.argv[2] ?? 5)
  const os = await import('node:os')
  console.log(`node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  const child = fork(self, ['clients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const messages = []
  const waiters = []
  child.on('message', (m) => { const w = waiters.shift(); if (w) w(m); else messages.push(m) })
  const next = () => messages.length ? Promise.resolve(messages.shift()) : new Promise((resolve) => waiters.push(resolve))

  const names = Object.keys(variants).filter((n) => !process.env.DRAIN_VARIANTS || process.env.DRAIN_VARIANTS.split(',').includes(n))
  for (const count of [1000, 10_000]) {
    const times = Object.fromEntries(names.map((n) => [n, { own: [], closed: [] }]))
    for (let round = 0; round < rounds + 1; round++) {
      const order = names.map((_, i) => names[(i + round) % names.length])
      for (const name of order) {
        let inFlight = 0
        let allIn
        const arrived = new Promise((resolve) => { allIn = resolve })
        const server = http.createServer(() => { if (++inFlight === count) allIn() }) // never answers
        // The harness's own observer, the same for every variant: when the last socket closed.
        let open = 0
        let lastClose = 0n
        let allClosed
        const closedAll = new Promise((resolve) => { allClosed = resolve })
        server.on('connection', (socket) => {
          open++
          socket.once('close', () => { lastClose = process.hrtime.bigint(); if (--open === 0) allClosed() })
        })
        const opened = async (port, n) => {
          child.send({ port, count: n })
          await next() // opened
          await arrived
        }
        const { t, own } = await variants[name](server, count, opened)
        await closedAll
        const closed = await next()
        if (closed.closed !== count) throw new Error(`${name}: ${closed.closed} of ${count} closed`)
        if (round > 0) { // round 0 warms up
          times[name].own.push(Number(own - t) / 1e6)
          times[name].closed.push(Number(lastClose - t) / 1e6)
        }
      }
    }
    console.log(`\n${count} connections with a request in flight, from force-close start (ms, median of ${rounds})`)
    console.log(`  ${'variant'.padEnd(16)} ${'own done'.padStart(9)} ${'all closed'.padStart(11)}   all-closed runs`)
    for (const name of names) {
      console.log(`  ${name.padEnd(16)} ${median(times[name].own).toFixed(1).padStart(9)} ${median(times[name].closed).toFixed(1).padStart(11)}   ${times[name].closed.map((x) => x.toFixed(1)).join(' ')}`)
    }
    if (times.privsep) {
      const p = times.privsep.closed
      for (const name of names.filter((n) => n !== 'privsep')) {
        console.log(`  ratio ${name}/privsep: all closed ${ratio(times[name].closed, p).text}, own done vs privsep done() ${ratio(times[name].own, p).text}  (target > 1)`)
      }
    }
  }
  child.kill()
}

if (process.argv[2] === 'clients') holdClients()
else await main()
