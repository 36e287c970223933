// The lifecycle on Windows, unchanged from Linux: servers on privsep Listeners (a TCP port and
// a named pipe) register their connections; the gauge counts them per label pair; shutdown
// stops accepting, closes what is left and, in a real child process, exits after the drain.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { Registry } from 'prom-client'
import { Lifecycle, Privsep, defaultMetricName } from 'privsep'

const here = path.dirname(fileURLToPath(import.meta.url))

async function freePort () {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Opens `count` clients to `target` that stay connected; each records when it closed. */
async function openClients (target, count) {
  return await Promise.all(Array.from({ length: count }, () => new Promise((resolve, reject) => {
    const socket = net.connect(target)
    socket.closedAt = new Promise((resolve) => socket.once('close', resolve))
    socket.on('error', () => {}) // a reset at shutdown is expected
    socket.once('data', () => resolve(socket)) // the server greets once it registered us
    socket.once('connect', () => socket.off('error', reject))
    socket.once('error', reject)
  })))
}

/** The gauge's values by `protocol/listener`, as a scrape reads them. */
async function gauge (registry) {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === defaultMetricName)
  const values = {}
  for (const { labels, value } of metric?.values ?? []) values[`${labels.protocol}/${labels.listener}`] = value
  return values
}

test('shutdown drains the registered connections of a TCP and a named pipe server; the gauge follows', async () => {
  const registry = new Registry()
  const lifecycle = new Lifecycle({ exit: false, graceMs: 300, closeTimeoutMs: 2000, registry, logger: pino({ level: 'silent' }) })
  const privsep = new Privsep()
  const port = await freePort()
  const pipe = `\\\\.\\pipe\\privsep-lifecycle-${process.pid}`
  const greet = (socket) => socket.write('220 ready\r\n')
  const smtp = await lifecycle.serve(net.createServer(greet), privsep.listen('tcp', `127.0.0.1:${port}`), { protocol: 'smtp', name: 'public' })
  const ctl = await lifecycle.serve(net.createServer(greet), privsep.listen('unix', pipe), { protocol: 'ctl', name: 'local' })

  const tcpClients = await openClients({ port, host: '127.0.0.1' }, 12)
  const pipeClients = await openClients({ path: pipe }, 5)
  assert.equal(lifecycle.connections.size, 17)
  assert.deepEqual(await gauge(registry), { 'smtp/public': 12, 'ctl/local': 5 })

  tcpClients.pop().destroy()
  while (lifecycle.connections.size !== 16) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.deepEqual(await gauge(registry), { 'smtp/public': 11, 'ctl/local': 5 }, 'a client that left is no longer counted')

  const result = await lifecycle.startShutdown('test')
  assert.equal(lifecycle.shutdown.aborted, true)
  assert.equal(lifecycle.context.aborted, true)
  assert.deepEqual(result, { reason: 'test', forced: false, remaining: 0, exitCode: 0 })
  await Promise.all([...tcpClients, ...pipeClients].map((socket) => socket.closedAt))
  assert.equal(lifecycle.connections.size, 0)
  const after = await gauge(registry)
  assert.ok(Object.values(after).every((value) => value === 0), JSON.stringify(after))
  assert.equal(smtp.listening, false, 'the TCP server stopped accepting')
  assert.equal(ctl.listening, false, 'the pipe server stopped accepting')
  await assert.rejects(openClients({ port, host: '127.0.0.1' }, 1), { code: 'ECONNREFUSED' })
})

test('a server process exits 0 after draining, with its shutdown logged', async () => {
  const port = await freePort()
  const child = spawn(process.execPath, [path.join(here, 'fixtures-drain-server.mjs'), String(port)], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  await new Promise((resolve, reject) => {
    const poll = setInterval(() => { if (stdout.includes('"listening"')) { clearInterval(poll); resolve() } }, 20)
    exited.then(() => { clearInterval(poll); reject(new Error(`server ended early:\n${stdout}\n${stderr}`)) })
  })
  const clients = await openClients({ port, host: '127.0.0.1' }, 8)
  child.stdin.end('stop\n')
  await Promise.all(clients.map((socket) => socket.closedAt))
  assert.deepEqual(await exited, { code: 0, signal: null }, stderr)
  const lines = stdout.trim().split('\n').map((line) => JSON.parse(line))
  assert.ok(lines.some((line) => line.msg.startsWith('shutdown started') && line.reason === 'stdin' && line.connections === 8), stdout)
  assert.ok(lines.some((line) => line.msg.startsWith('shutdown done') && line.exitCode === 0), stdout)
})
