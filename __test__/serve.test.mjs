// serve(): HTTP keep-alive clients racing a real SIGTERM, HTTPS idle connections, HTTP/2
// GOAWAY, and serve's own errors. Real sockets throughout.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import http2 from 'node:http2'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { Writable } from 'node:stream'
import { after, test } from 'node:test'
import pino from 'pino'
import { Lifecycle, Privsep, programMetrics } from 'privsep'
import { start } from './helpers.mjs'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-serve-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
  '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' })
const secure = { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A keep-alive HTTP/1.1 client on one connection that keeps sending (sometimes two
 * pipelined requests) until the server closes it. Resolves with what it sent and got.
 */
function keepAliveClient (port, host, name, random) {
  return new Promise((resolve) => {
    const socket = net.connect(port, host)
    const sent = []
    const responses = []
    let buffer = ''
    let seq = 0
    let expecting = 0
    const send = () => {
      const n = random(4) === 0 ? 2 : 1
      for (let i = 0; i < n; i++) {
        const id = `${name}-${seq++}`
        const early = random(2)
        sent.push(id)
        socket.write(`GET /?id=${id}&delay=${5 + random(40)}&early=${early} HTTP/1.1\r\nHost: x\r\n\r\n`)
        expecting++
      }
    }
    socket.on('connect', send)
    socket.on('data', (chunk) => {
      buffer += chunk
      for (;;) {
        const head = buffer.indexOf('\r\n\r\n')
        if (head < 0) return
        const headers = buffer.slice(0, head)
        const status = Number(/^HTTP\/1\.1 (\d+)/.exec(headers)[1])
        const closes = /\r\nconnection: close/i.test(headers)
        let body, rest
        if (/\r\ntransfer-encoding: chunked/i.test(headers)) {
          // Only the server's own empty 503 is chunked here.
          const end = buffer.indexOf('0\r\n\r\n', head + 4)
          if (end < 0) return
          body = ''
          rest = buffer.slice(end + 5)
        } else {
          const length = Number(/\r\ncontent-length: (\d+)/i.exec(headers)?.[1] ?? 0)
          if (buffer.length < head + 4 + length) return
          body = buffer.slice(head + 4, head + 4 + length)
          rest = buffer.slice(head + 4 + length)
        }
        responses.push({ id: sent[responses.length], status, body, closes })
        buffer = rest
        if (--expecting === 0 && !closes && status === 200) send()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve({ sent, responses, cut: buffer }))
  })
}

test('HTTP keep-alive clients sending through a SIGTERM: every request handled is answered whole, late ones too, the last closing its connection', { timeout: 60_000 }, async () => {
  const run = start('lifecycle-server.mjs', { graceMs: 1500, servers: [{ kind: 'http', protocol: 'http', name: 'web', host: '127.0.0.7' }] })
  let ready
  while ((ready = await run.next(20_000)).event !== 'ready');
  let seed = 11
  const random = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return (seed >>> 16) % n }
  const clients = Array.from({ length: 12 }, (_, i) => keepAliveClient(ready.ports[0], '127.0.0.7', `c${i}`, random))
  // A connection made before the stop whose first request comes after it.
  const late = net.connect(ready.ports[0], '127.0.0.7')
  let lateAnswer = ''
  late.on('data', (chunk) => { lateAnswer += chunk })
  const lateClosed = new Promise((resolve) => late.on('close', resolve))
  await sleep(400)
  run.child.kill('SIGTERM')
  await sleep(150)
  late.write('GET /?id=late&delay=5 HTTP/1.1\r\nHost: x\r\n\r\n')
  const results = await Promise.all(clients)
  await lateClosed
  const { code } = await run.exited
  assert.equal(code, 0, run.stderr)
  assert.match(lateAnswer, /^HTTP\/1\.1 200 OK\r\n[^]*\r\nConnection: close\r\n[^]*\r\n\r\nlate\n$/i, 'the late request was handled, its response closing the connection')
  await new Promise((resolve) => run.child.stdout.readableEnded ? resolve() : run.child.stdout.on('close', resolve))

  const handled = new Map(run.all.filter((l) => l.event === 'request').map((l) => [l.id, l]))
  assert.ok(handled.size >= 20, `only ${handled.size} requests were handled`)
  assert.deepEqual(results.map((r) => r.cut).filter((cut) => cut !== ''), [], 'no response cut short')
  const got = new Map(results.flatMap((r) => r.responses.map((res) => [res.id, res])))
  for (const [id] of handled) {
    if (id === 'late') continue
    const res = got.get(id)
    assert.ok(res, `request ${id} was handled but its response never arrived complete ${JSON.stringify(handled.get(id))} ${JSON.stringify(results.find((r) => r.sent.includes(id)))}`)
    assert.equal(res.status, 200)
    assert.equal(res.body, `${id}\n`)
  }
  // After the stop a connection closes after the last response on it (pipelined requests
  // before it were answered on it too), and that response says so.
  for (const { responses } of results) {
    if (responses.some((r) => handled.get(r.id)?.aborted)) assert.equal(responses.at(-1).closes, true, `${responses.at(-1).id}: the last response did not say Connection: close`)
  }
  assert.deepEqual([...got.keys()].filter((id) => !handled.has(id)), [], 'every response came from the handler (no 503)')
  assert.equal(handled.get('late')?.aborted, true, 'the late request was handled after the stop')
})

test('https: a TLS handshake that ends after the stop is served, not reset; the drain waits for it', { timeout: 10_000 }, async () => {
  const lc = new Lifecycle({ exit: false, graceMs: 10_000, registry: false, logger: quiet() })
  const server = https.createServer(secure, (req, res) => res.end(`ok ${lc.shutdown.aborted}`))
  await lc.serve(server, listener(), { protocol: 'https', name: 'web' })
  const raw = net.connect(server.address().port, '127.0.0.1')
  await new Promise((resolve) => raw.once('connect', resolve))
  while (lc.connections.size < 1) await sleep(5)
  const result = lc.startShutdown('test')
  await sleep(100)
  assert.equal(lc.context.aborted, false, 'the drain waits for the connection in its handshake')
  const answer = await new Promise((resolve, reject) => {
    https.get({ createConnection: () => tls.connect({ socket: raw, rejectUnauthorized: false }), path: '/' }, (res) => {
      let b = ''
      res.on('data', (c) => { b += c }).on('end', () => resolve({ body: b, connection: res.headers.connection }))
    }).on('error', reject)
  })
  assert.deepEqual(answer, { body: 'ok true', connection: 'close' })
  assert.equal((await result).remaining, 0)
})

function quiet () {
  return pino({ name: 'test' }, new Writable({ write (_c, _e, cb) { cb() } }))
}

function listener () {
  const p = new Privsep()
  p.filesImmediate = true
  return p.listen('tcp', '127.0.0.1:0')
}

test('https: TLS connections are registered from accept; idle keep-alive ones close at the stop, busy ones finish', async () => {
  const lc = new Lifecycle({ exit: false, graceMs: 10_000, registry: false, logger: quiet() })
  let raw = 0
  const server = https.createServer(secure, (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('slow'), 300)
    else res.end('ok')
  })
  server.on('connection', () => raw++)
  await lc.serve(server, listener(), { protocol: 'https', name: 'web' })
  const port = server.address().port
  const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false })
  const get = (p, via = agent) => new Promise((resolve, reject) => {
    https.get({ port, host: '127.0.0.1', path: p, agent: via }, (res) => {
      let b = ''
      res.on('data', (c) => { b += c }).on('end', () => resolve({ body: b, connection: res.headers.connection }))
    }).on('error', reject)
  })
  assert.equal((await get('/')).body, 'ok')
  assert.equal(raw, 1)
  assert.deepEqual(lc.connections.counts(), [{ protocol: 'https', listener: 'web', count: 1 }])
  const [idle] = Object.values(agent.freeSockets).flat()
  const idleClosed = new Promise((resolve) => idle.on('close', () => resolve(lc.context.aborted)))
  const other = new https.Agent({ keepAlive: true, rejectUnauthorized: false })
  const slow = get('/slow', other)
  while (lc.connections.size < 2) await sleep(5)
  const closed = () => programMetrics().read().find((x) => x.protocol === 'https' && x.listener === 'web')?.closed ?? [0, 0, 0, 0, 0]
  const before = closed()
  const result = lc.startShutdown('test')
  assert.equal(await idleClosed, false, 'the idle connection closed at the stop, before context')
  assert.deepEqual(await slow, { body: 'slow', connection: 'close' }, 'the busy one finished, told to close')
  assert.equal((await result).remaining, 0)
  // privsep_connections_closed_total: the idle one as `idle` (its TCP socket, under the TLS
  // socket serve() closed), the busy one as `closed`.
  assert.deepEqual(closed().map((n, i) => n - before[i]), [1, 0, 1, 0, 0], 'closed, error, idle, forced, unregistered')
  agent.destroy()
  other.destroy()
})

for (const variant of ['h2c', 'h2 over TLS']) {
  test(`http2 (${variant}): the stop sends GOAWAY, the stream in flight completes, no new stream is served`, async () => {
    const lc = new Lifecycle({ exit: false, graceMs: 10_000, registry: false, logger: quiet() })
    const seen = []
    const server = variant === 'h2c' ? http2.createServer() : http2.createSecureServer(secure)
    server.on('stream', (stream, headers) => {
      seen.push(headers[':path'])
      stream.respond({ ':status': 200 })
      setTimeout(() => stream.end(`done ${headers[':path']}`), 150)
    })
    await lc.serve(server, listener(), { protocol: 'h2', name: 'api' })
    const scheme = variant === 'h2c' ? 'http' : 'https'
    const session = http2.connect(`${scheme}://127.0.0.1:${server.address().port}`, { rejectUnauthorized: false })
    session.on('error', () => {})
    const goaway = new Promise((resolve) => session.on('goaway', resolve))
    const request = (p) => new Promise((resolve) => {
      let req
      try {
        req = session.request({ ':path': p })
      } catch (err) {
        resolve({ error: err.code, client: true })
        return
      }
      let b = ''
      req.on('data', (c) => { b += c })
      req.on('end', () => resolve({ body: b }))
      req.on('error', (err) => resolve({ error: err.code }))
    })
    const first = request('/first')
    while (seen.length === 0) await sleep(5)
    assert.deepEqual(lc.connections.counts(), [{ protocol: 'h2', listener: 'api', count: 1 }])
    const result = lc.startShutdown('test')
    // Sent in the same tick, before the client can have read the GOAWAY: the server must refuse it.
    const late = request('/late')
    await goaway
    assert.ok((await late).error, 'a stream opened after the stop fails')
    assert.deepEqual(await first, { body: 'done /first' })
    const r = await result
    assert.equal(r.remaining, 0)
    assert.equal(lc.context.aborted, true)
    assert.deepEqual(seen, ['/first'], 'no stream after the stop reached the handler')
    session.destroy()
  })
}

test('serve: bad options are ERR_PRIVSEP_INVALID_ARGUMENT; after shutdown started, ERR_PRIVSEP_SHUTDOWN', async () => {
  const lc = new Lifecycle({ exit: false, graceMs: 0, registry: false, logger: quiet() })
  await assert.rejects(lc.serve(net.createServer(), listener(), { protocol: 'smtp' }), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT' })
  await lc.startShutdown()
  await assert.rejects(lc.serve(net.createServer(), listener(), { protocol: 'smtp', name: 'public' }), (err) => {
    assert.equal(err.code, 'ERR_PRIVSEP_SHUTDOWN')
    assert.match(err.message, /smtp\/public/)
    return true
  })
})
