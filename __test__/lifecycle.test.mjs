// Graceful shutdown of a real server process on real signals: the order of the phases, the
// exit code, a second signal forcing the exit, and (in this process, exit: false) what an
// embedder awaits.
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { Duplex, Writable } from 'node:stream'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pino from 'pino'
import { duplicateSignalMs, Lifecycle } from 'privsep'
import { start } from './helpers.mjs'

/** Starts lifecycle-server.mjs and waits for its 'ready' line. */
async function startServer (config, options) {
  const run = start('lifecycle-server.mjs', config, options)
  for (;;) {
    const line = await run.next(20_000)
    if (line.event === 'ready') return { ...run, ready: line }
  }
}

/** Connects and resolves with the socket once the greeting line arrived. */
function greeted (port, host) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host)
    socket.once('data', () => resolve(socket))
    socket.once('error', reject)
  })
}

test('SIGTERM: shutdown aborts, then context after its delay, then sockets close, then done and exit 0', async () => {
  const graceMs = 400
  const run = await startServer({ graceMs, logSocketClose: true, servers: [{ kind: 'net', protocol: 'smtp', name: 'public', host: '127.0.0.2' }] })
  const clients = await Promise.all([1, 2, 3].map(() => greeted(run.ready.ports[0], '127.0.0.2')))
  const clientClosed = clients.map((c) => new Promise((resolve) => c.on('close', () => resolve(Date.now()))))
  run.child.kill('SIGTERM')
  const { code, signal } = await run.exited
  await new Promise((resolve) => run.child.stdout.readableEnded ? resolve() : run.child.stdout.on('close', resolve))
  assert.equal(signal, null)
  assert.equal(code, 0, `documented default exit code after a drain; stderr:\n${run.stderr}`)
  await Promise.all(clientClosed)

  const events = run.all.filter((l) => l.event !== undefined || /^shutdown|^context/.test(l.msg ?? ''))
  const order = events.map((l) => l.event ?? l.msg).filter((e) => e !== 'ready')
  assert.deepEqual(order, [
    'shutdown started: no longer accepting',
    'shutdown-abort',
    'context aborted: cancelling work in flight',
    'context-abort',
    'socket-close', 'socket-close', 'socket-close',
    'shutdown done: no connection left',
    'before-exit'
  ])
  const at = (name) => events.find((l) => (l.event ?? l.msg) === name).time
  assert.ok(at('context-abort') - at('shutdown-abort') >= graceMs - 5, 'context waits for its delay while connections are open')
  assert.equal(run.all.find((l) => l.msg === 'shutdown started: no longer accepting').reason, 'SIGTERM', 'the reason is logged')
  assert.equal(events.find((l) => l.event === 'shutdown-abort').code, 'ERR_PRIVSEP_SHUTDOWN')
  const last = events.at(-1)
  assert.equal(last.size, 0)
  assert.deepEqual(last.gauge.map((v) => [v.labels.protocol, v.labels.listener, v.value]), [['smtp', 'public', 0]])
  assert.deepEqual(last.result, { reason: 'SIGTERM', forced: false, remaining: 0, exitCode: 0 })
})

test('the exit code is configurable, and SIGINT starts the shutdown too', async () => {
  const run = await startServer({ exitCode: 3, servers: [{ kind: 'net', protocol: 'smtp', name: 'public', host: '127.0.0.2' }] })
  run.child.kill('SIGINT')
  const { code } = await run.exited
  assert.equal(code, 3, run.stderr)
})

test('shutdownDelayMs: readiness answers 503 within 100 ms of SIGTERM while requests keep succeeding for the delay; a second SIGTERM changes nothing', async () => {
  const delay = 1500
  const run = await startServer({ shutdownDelayMs: delay, servers: [{ kind: 'http', protocol: 'http', name: 'web', host: '127.0.0.4' }] })
  const port = run.ready.ports[0]
  /** One request on a new connection: its status, or the error's code. */
  const get = (path) => new Promise((resolve) => {
    http.get({ host: '127.0.0.4', port, path, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)) })
      .on('error', (err) => resolve(err.code))
  })
  assert.equal(await get('/ready'), 200)
  const probes = []
  const requests = []
  let polling = true
  const poll = (async () => {
    while (polling) {
      const at = performance.now() // when the probe was sent
      const [ready, request] = await Promise.all([get('/ready'), get('/?id=x')])
      probes.push([at, ready])
      requests.push([at, request])
      await sleep(10)
    }
  })()
  await sleep(200)
  const sent = performance.now()
  run.child.kill('SIGTERM')
  await sleep(400)
  run.child.kill('SIGTERM') // Kubernetes: a preStop hook's signal, then its own
  await sleep(delay - 400 - 150)
  polling = false
  await poll
  // Every probe sent from 100 ms after the signal on saw 503; every one before the signal, 200.
  assert.deepEqual(probes.filter(([at]) => at < sent).map(([, status]) => status).filter((s) => s !== 200), [])
  const late = probes.filter(([at]) => at >= sent + 100)
  assert.ok(late.length > 10, 'probes were sent during the delay')
  assert.deepEqual(late.map(([, status]) => status).filter((s) => s !== 503), [], 'not ready from 100 ms after SIGTERM on')
  assert.deepEqual(requests.map(([, status]) => status).filter((s) => s !== 200), [], 'every request during the delay succeeded')
  assert.ok(requests.filter(([at]) => at > sent).length > 10, 'requests were sent during the delay')
  assert.equal(run.child.exitCode, null, 'still serving: the second SIGTERM did not force the exit')
  assert.deepEqual(await run.exited, { code: 0, signal: null }, run.stderr)
})

test('a second signal during the shutdown forces the exit at once (128 + signal number)', async () => {
  const run = await startServer({ graceMs: 120_000, servers: [{ kind: 'net', protocol: 'imap', name: 'public', host: '127.0.0.3' }] })
  const client = await greeted(run.ready.ports[0], '127.0.0.3')
  const clientClosed = new Promise((resolve) => client.on('close', resolve))
  run.child.kill('SIGTERM')
  for (;;) {
    const line = await run.next()
    if (line.event === 'shutdown-abort') break
  }
  // Later than duplicateSignalMs: a repeat within it is the same request delivered twice.
  await sleep(duplicateSignalMs + 100)
  run.child.kill('SIGTERM')
  const { code, signal } = await run.exited
  assert.equal(signal, null)
  assert.equal(code, 143, run.stderr)
  await clientClosed
  await new Promise((resolve) => run.child.stdout.readableEnded ? resolve() : run.child.stdout.on('close', resolve))
  assert.ok(run.all.some((l) => l.msg === 'second signal during shutdown: forcing exit' && l.signal === 'SIGTERM'), 'the forced exit is logged (and flushed)')
  assert.ok(run.all.some((l) => l.event === 'context-abort'), 'context is aborted when forced')
})

function quietLogger () {
  const lines = []
  return { lines, logger: pino({ name: 'test' }, new Writable({ write (c, _e, cb) { lines.push(...String(c).split('\n').filter(Boolean).map((l) => JSON.parse(l))); cb() } })) }
}

test('with exit: false an embedder awaits the shutdown; startShutdown is idempotent', async () => {
  const { logger, lines } = quietLogger()
  const lc = new Lifecycle({ exit: false, graceMs: 50, registry: false, logger })
  const server = net.createServer((s) => { s.on('error', () => {}); s.write('hi\n') })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  server.on('connection', (s) => lc.connections.register(s, 'smtp', 'embedded'))
  const client = await greeted(server.address().port, '127.0.0.1')
  client.on('error', () => {})
  const first = lc.startShutdown('deploy')
  const second = lc.startShutdown('again')
  assert.equal(lc.shutdown.aborted, true)
  assert.equal(lc.context.aborted, false)
  const [a, b] = await Promise.all([first, second])
  assert.deepEqual(a, { reason: 'deploy', forced: false, remaining: 0, exitCode: 0 })
  assert.deepEqual(b, a)
  assert.equal(lc.context.aborted, true)
  assert.equal(lc.context.reason.code, 'ERR_PRIVSEP_SHUTDOWN')
  assert.equal(lines.filter((l) => l.msg === 'shutdown started: no longer accepting').length, 1)
  assert.equal(client.destroyed || client.readableEnded, true)
  await new Promise((resolve) => server.close(resolve))
  // npm test ends each file once its tests are done (--test-force-exit), so a timer the
  // lifecycle left behind would not show as a hang: look for one.
  assert.deepEqual(process.getActiveResourcesInfo().filter((r) => r === 'Timeout'), [], 'no timer left behind')
})

test('connections that never close: the shutdown ends after closeTimeoutMs with exit code 1', async () => {
  const { logger } = quietLogger()
  const lc = new Lifecycle({ exit: false, graceMs: 10, closeTimeoutMs: 50, registry: false, logger })
  const stuck = new Duplex({ emitClose: false, read () {}, write (_c, _e, cb) { cb() } })
  lc.connections.register(stuck, 'custom', 'stuck')
  const result = await lc.startShutdown()
  assert.deepEqual(result, { reason: undefined, forced: false, remaining: 1, exitCode: 1 })
})

test('bad options: ERR_PRIVSEP_INVALID_ARGUMENT', () => {
  assert.throws(() => new Lifecycle({ graceMs: -1 }), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT' })
  assert.throws(() => new Lifecycle({ shutdownDelayMs: 1.5 }), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT', message: /shutdownDelayMs/ })
  assert.throws(() => new Lifecycle({ exitCode: 1.5 }), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT' })
})
