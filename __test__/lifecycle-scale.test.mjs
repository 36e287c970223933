// At scale: 10,000 open client connections over several protocol/listener pairs drained by one
// SIGTERM, with the gauge matching before and reading zero after, and no listener warning;
// and 1,000,000 register/unregister cycles that leave the heap where it was.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { after, test } from 'node:test'
import { fixtures, start } from './helpers.mjs'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-scale-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))

function selfSigned () {
  const key = path.join(dir, 'key.pem')
  const cert = path.join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' })
  return { key, cert }
}

/** Both ends run under this process's fd limit (the hard limit here is 20,000, not raisable). */
function checkFdLimit (need) {
  const [soft, hard] = execFileSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).split('\n').map((v) => v === 'unlimited' ? Infinity : Number(v))
  assert.ok(hard >= need && soft >= need, `raise the fd limit for the test run (ulimit -n ${need}); it is ${soft}`)
}

function scrape (port) {
  return new Promise((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path: '/metrics' }, (res) => {
      let body = ''
      res.on('data', (c) => { body += c }).on('end', () => resolve(body))
    }).on('error', reject)
  })
}

function gaugeValues (text) {
  const out = {}
  for (const m of text.matchAll(/^privsep_connections\{protocol="([^"]+)",listener="([^"]+)"\} (\d+)$/gm)) out[`${m[1]}/${m[2]}`] = Number(m[3])
  return out
}

test('10,000 connections over several protocol/listener pairs: one SIGTERM drains them all, gauge to zero, no warning', { timeout: 180_000 }, async () => {
  const plan = [
    { kind: 'net', protocol: 'smtp', name: 'public', host: '127.0.0.2', count: 3500 },
    { kind: 'net', protocol: 'smtp', name: 'submission', host: '127.0.0.3', count: 2000 },
    { kind: 'net', protocol: 'imap', name: 'public', host: '127.0.0.4', count: 2000 },
    { kind: 'http', protocol: 'http', name: 'web', host: '127.0.0.5', count: 2000 },
    { kind: 'tls', protocol: 'imaps', name: 'public', host: '127.0.0.6', count: 500 }
  ]
  assert.equal(plan.reduce((n, p) => n + p.count, 0), 10_000)
  checkFdLimit(10_000 + 1000)
  const run = start('lifecycle-server.mjs', { graceMs: 2000, closeTimeoutMs: 5000, backlog: 4096, tls: selfSigned(), servers: plan })
  let ready
  while (!(ready = await run.next(20_000)).event?.startsWith('ready'));

  const clients = []
  const closed = []
  const open = (p, port) => new Promise((resolve, reject) => {
    const socket = p.kind === 'tls'
      ? tls.connect({ port, host: p.host, rejectUnauthorized: false })
      : net.connect(port, p.host)
    socket.on('error', () => {})
    closed.push(new Promise((resolve) => socket.on('close', resolve)))
    clients.push(socket)
    if (p.kind === 'http') {
      // One keep-alive request with its response, then the connection stays open and busy
      // reading: idle for the server.
      socket.write(`GET /?id=x HTTP/1.1\r\nHost: x\r\n\r\n`)
    }
    socket.once('data', () => resolve())
    socket.once('close', () => reject(new Error(`${p.protocol}/${p.name} connection closed before its first answer`)))
  })
  for (const [i, p] of plan.entries()) {
    for (let done = 0; done < p.count; done += 250) {
      await Promise.all(Array.from({ length: Math.min(250, p.count - done) }, () => open(p, ready.ports[i])))
    }
  }
  assert.equal(clients.length, 10_000)

  const before = gaugeValues(await scrape(ready.metricsPort))
  assert.deepEqual(before, Object.fromEntries(plan.map((p) => [`${p.protocol}/${p.name}`, p.count])))

  run.child.kill('SIGTERM')
  const { code, signal } = await run.exited
  assert.equal(signal, null)
  assert.equal(code, 0, run.stderr)
  await Promise.all(closed)
  assert.ok(clients.every((c) => c.destroyed), 'every client connection was closed by the server')
  await new Promise((resolve) => run.child.stdout.readableEnded ? resolve() : run.child.stdout.on('close', resolve))
  const last = run.all.find((l) => l.event === 'before-exit')
  assert.ok(last, 'the drain reached beforeExit')
  assert.equal(last.size, 0)
  assert.equal(last.gauge.length, plan.length)
  assert.ok(last.gauge.every((v) => v.value === 0), JSON.stringify(last.gauge))
  assert.doesNotMatch(run.stderr, /MaxListenersExceededWarning/)
  assert.doesNotMatch(run.stderr, /Warning/)
})

test('1,000,000 register/unregister cycles leave the heap within 1 MB of where it started', { timeout: 120_000 }, async () => {
  const out = execFileSync(process.execPath, ['--expose-gc', path.join(fixtures, 'lifecycle-heap.mjs'), '1000000'], { encoding: 'utf8' })
  const r = JSON.parse(out)
  assert.equal(r.cycles, 1_000_000)
  assert.equal(r.size, 0)
  assert.equal(r.closeListeners, 0, 'no close listener left behind')
  assert.ok(Math.abs(r.growth) < 1024 * 1024, `heap moved by ${r.growth} bytes`)
})
