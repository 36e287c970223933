// The connection registry with real sockets: tracking until 'close', force-closing with
// ERR_PRIVSEP_SHUTDOWN, closing late registrations at once, and a gauge that matches the real
// open connections per label pair.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import net from 'node:net'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import pino from 'pino'
import { Registry, Gauge } from 'prom-client'
import { ConnectionRegistry } from 'privsep'

/** A pino logger whose lines land in `lines` (parsed). */
function capture () {
  const lines = []
  const stream = new Writable({ write (chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb() } })
  return { lines, logger: pino({ name: 'test' }, stream) }
}

/** A server on 127.0.0.1 whose accepted sockets go to `onSocket`; returns { server, port }. */
async function server (onSocket) {
  const srv = net.createServer(onSocket)
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  return { server: srv, port: srv.address().port }
}

/** Opens a client connection and resolves once the server side has been registered. */
async function connect (port) {
  const client = net.connect(port, '127.0.0.1')
  client.on('error', () => {})
  await new Promise((resolve) => client.on('connect', resolve))
  return client
}

const tick = () => new Promise((resolve) => setImmediate(resolve))
async function until (cond, what) {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.ok(cond(), `timed out waiting for ${what}`)
}

test('a registered socket unregisters itself on close; unregister is idempotent; done() waits for the last', async () => {
  const reg = new ConnectionRegistry({ registry: false, logger: capture().logger })
  await reg.done() // at once when empty
  const accepted = []
  const { server: srv, port } = await server((s) => { accepted.push(s); reg.register(s, 'smtp', 'public') })
  const clients = [await connect(port), await connect(port), await connect(port)]
  await until(() => reg.size === 3, 'three registrations')
  let doneResolved = false
  const done = reg.done().then(() => { doneResolved = true })
  reg.register(accepted[0], 'imap', 'public') // again, under other labels: still one entry
  assert.equal(reg.size, 3)
  assert.equal(accepted[0].listenerCount('close'), 1, 'registering again adds no second close listener')
  reg.unregister(accepted[0])
  reg.unregister(accepted[0])
  assert.equal(reg.size, 2)
  assert.equal(accepted[0].listenerCount('close'), 0, 'unregister removes its close listener')
  clients[1].destroy()
  await until(() => reg.size === 1, 'the closed socket to unregister')
  await tick()
  assert.equal(doneResolved, false, 'done() must wait while a socket remains')
  clients[2].end()
  await done
  assert.equal(reg.size, 0)
  clients[0].destroy()
  srv.close()
})

test('shutdown() closes every socket with an error whose code is ERR_PRIVSEP_SHUTDOWN', async () => {
  const { lines, logger } = capture()
  const reg = new ConnectionRegistry({ registry: false, logger })
  const errors = []
  const { server: srv, port } = await server((s) => {
    s.on('error', (err) => errors.push(err.code))
    reg.register(s, 'imap', 'public')
  })
  const clients = await Promise.all(Array.from({ length: 5 }, () => connect(port)))
  await until(() => reg.size === 5, 'five registrations')
  const closedAtClient = Promise.all(clients.map((c) => new Promise((resolve) => c.on('close', resolve))))
  reg.shutdown()
  await reg.done()
  await closedAtClient
  assert.deepEqual(errors, Array(5).fill('ERR_PRIVSEP_SHUTDOWN'))
  assert.ok(lines.some((l) => l.msg === 'closing open connections' && l.connections === 5))
  srv.close()
})

test('a socket without an error listener is closed by shutdown() without an uncaught error', async () => {
  const reg = new ConnectionRegistry({ registry: false, logger: capture().logger })
  const { server: srv, port } = await server((s) => reg.register(s, 'smtp', 'bare'))
  const client = await connect(port)
  await until(() => reg.size === 1, 'registration')
  const closed = new Promise((resolve) => client.on('close', resolve))
  reg.shutdown()
  await reg.done()
  await closed
  srv.close()
})

test('a socket registered after shutdown started is closed at once, and that is logged', async () => {
  const { lines, logger } = capture()
  const controller = new AbortController()
  const reg = new ConnectionRegistry({ registry: false, logger, shutdown: controller.signal })
  const errors = []
  const { server: srv, port } = await server((s) => {
    s.on('error', (err) => errors.push(err.code))
    reg.register(s, 'smtp', 'late')
  })
  const early = await connect(port)
  await until(() => reg.size === 1, 'the early registration')
  controller.abort()
  const late = await connect(port)
  const lateClosed = new Promise((resolve) => late.on('close', resolve))
  await lateClosed // the server destroys it on registration; nothing else closes it
  assert.deepEqual(errors, ['ERR_PRIVSEP_SHUTDOWN'])
  assert.equal(early.destroyed, false, 'the early socket is left for the drain')
  assert.equal(reg.size, 1)
  const warn = lines.find((l) => l.msg === 'connection registered after shutdown started: closing it')
  assert.ok(warn, 'the late registration is logged')
  assert.equal(warn.protocol, 'smtp')
  assert.equal(warn.listener, 'late')
  early.destroy()
  await reg.done()
  srv.close()
})

test('the gauge matches the open connections per label pair during churn', async () => {
  const registry = new Registry()
  const reg = new ConnectionRegistry({ registry, logger: capture().logger })
  const pairs = [['smtp', 'public'], ['smtp', 'submission'], ['imap', 'public']]
  const open = new Map(pairs.map(([p, l]) => [`${p}/${l}`, new Set()]))
  const servers = []
  for (const [protocol, listener] of pairs) {
    servers.push(await server((s) => {
      // The test's own count, kept apart from the registry: the sockets really open.
      const set = open.get(`${protocol}/${listener}`)
      set.add(s)
      s.on('close', () => set.delete(s))
      s.on('error', () => {})
      reg.register(s, protocol, listener)
    }))
  }
  const clients = []
  let seed = 7
  const random = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return (seed >>> 16) % n }
  let checks = 0
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 10; i++) {
      if (clients.length > 0 && random(3) === 0) clients.splice(random(clients.length), 1)[0].destroy()
      else {
        const c = net.connect(servers[random(servers.length)].port, '127.0.0.1')
        c.on('error', () => {})
        clients.push(c)
      }
    }
    await new Promise((resolve) => setTimeout(resolve, random(5)))
    // Snapshot the real counts and scrape in the same tick: collect() runs synchronously.
    const expected = Object.fromEntries([...open].map(([k, set]) => [k, set.size]))
    const scraped = registry.getMetricsAsJSON()
    const [metric] = await scraped
    const got = Object.fromEntries(metric.values.map((v) => [`${v.labels.protocol}/${v.labels.listener}`, v.value]))
    for (const key of Object.keys(got)) assert.equal(got[key], expected[key], `round ${round}, ${key}`)
    checks++
  }
  assert.equal(checks, 40)
  for (const c of clients) c.destroy()
  await reg.done()
  const final = (await registry.getMetricsAsJSON())[0].values
  assert.equal(final.length, 3, 'every pair seen stays, at zero')
  assert.ok(final.every((v) => v.value === 0))
  for (const { server: srv } of servers) srv.close()
})

test('creating the metrics twice in one registry reuses the gauge, which sums both registries', async () => {
  const registry = new Registry()
  const a = new ConnectionRegistry({ registry, logger: capture().logger })
  const b = new ConnectionRegistry({ registry, logger: capture().logger })
  a.registerMetrics()
  a.registerMetrics(registry)
  b.registerMetrics(registry)
  assert.equal(registry.getMetricsAsArray().length, 8, 'the gauge and the seven program-wide families, once')
  const { server: srv, port } = await server((s) => { (s.localPort % 2 ? a : b).register(s, 'smtp', 'public'); a.register(s, 'smtp', 'public') })
  const client = await connect(port)
  await until(() => a.size === 1, 'registration')
  const text = await registry.metrics()
  assert.match(text, /privsep_connections\{protocol="smtp",listener="public"\} [12]/)
  client.destroy()
  await a.done()
  await b.done()
  assert.match(await registry.metrics(), /privsep_connections\{protocol="smtp",listener="public"\} 0/)
  srv.close()
})

test('a metric of the same name that privsep did not create: ERR_PRIVSEP_METRIC_CONFLICT', () => {
  const registry = new Registry()
  new Gauge({ name: 'privsep_connections', help: 'someone else', registers: [registry] }) // eslint-disable-line no-new
  const reg = new ConnectionRegistry({ registry, logger: capture().logger })
  assert.throws(() => reg.registerMetrics(), (err) => {
    assert.equal(err.code, 'ERR_PRIVSEP_METRIC_CONFLICT')
    assert.match(err.message, /privsep_connections\b/)
    return true
  })
  const other = new ConnectionRegistry({ registry, metricName: 'app_connections', logger: capture().logger })
  other.registerMetrics()
  assert.ok(registry.getSingleMetric('app_connections'))
})

test('importing the package installs no signal handler and creates no metric', () => {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
    const before = ['SIGTERM', 'SIGINT'].map((s) => process.listenerCount(s))
    const privsep = await import('privsep')
    const { register } = await import('prom-client')
    console.log(JSON.stringify({
      before,
      after: ['SIGTERM', 'SIGINT', 'SIGHUP'].map((s) => process.listenerCount(s)),
      metrics: register.getMetricsAsArray().length,
      hasShutdown: privsep.shutdown instanceof AbortSignal && !privsep.shutdown.aborted
    }))
  `], { cwd: new URL('..', import.meta.url).pathname, encoding: 'utf8' })
  assert.deepEqual(JSON.parse(out), { before: [0, 0], after: [0, 0, 0], metrics: 0, hasShutdown: true })
})
