// Shared by the core tests: run a fixture program as a real process, read its JSON lines,
// talk to what it serves.
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { build } from 'esbuild'

export const fixtures = new URL('./fixtures/', import.meta.url).pathname
export const nobody = { uid: 65534, gid: 65534 }

/**
 * Starts `node fixtures/<name> <json>` (or `options.argv`) and returns the process with
 * helpers: `next()` gives the next JSON line on stdout, `exited` resolves with { code, signal },
 * `stderr` collects.
 */
export function start (name, config, options = {}) {
  const { prefix = [], argv = [...prefix, process.execPath, path.join(fixtures, name), JSON.stringify(config)], ...spawnOptions } = options
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions })
  const lines = []
  const all = []
  const waiters = []
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let value
    try { value = JSON.parse(line) } catch { value = { text: line } }
    all.push(value)
    const waiter = waiters.shift()
    if (waiter) waiter(value); else lines.push(value)
  })
  let stderr = ''
  child.stderr?.on('data', (chunk) => { stderr += chunk })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  return {
    child,
    exited,
    all,
    get stderr () { return stderr },
    next: (ms = 10_000) => lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no output from ${name} within ${ms} ms; stderr:\n${stderr}`)), ms)
      waiters.push((value) => { clearTimeout(timer); resolve(value) })
    })
  }
}

/** The next JSON line of `run` (see `start`) with `ready` set: a generation that called ready(). */
export async function readyLine (run, ms = 40_000) {
  for (;;) {
    const line = await run.next(ms)
    if (line.ready) return line
  }
}

/** Runs a fixture to its end; returns { code, signal, lines, stderr }. */
export async function runToEnd (name, config, options = {}) {
  const run = start(name, config, options)
  const { code, signal } = await run.exited
  await new Promise((resolve) => run.child.stdout.readableEnded ? resolve() : run.child.stdout.on('close', resolve))
  return { code, signal, stderr: run.stderr, lines: run.all }
}

/** Reads everything a TCP or unix server sends after connecting. */
export function fetchStream (options) {
  return new Promise((resolve, reject) => {
    let data = ''
    net.connect(options).on('data', (chunk) => { data += chunk }).on('end', () => resolve(data.trim())).on('error', reject)
  })
}

/** Sends one datagram and resolves with the first answer. */
export function fetchDatagram (type, port, host) {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(type)
    const timer = setTimeout(() => { socket.close(); reject(new Error(`no UDP answer from ${host}:${port}`)) }, 5000)
    socket.on('message', (msg) => { clearTimeout(timer); socket.close(); resolve(String(msg)) })
    socket.send('hello', port, host)
  })
}

/** A fresh directory under the system temp dir that `nobody` can enter. */
/**
 * `count` consecutive ports from a random start in [from, from + span), each free now on every
 * address: a bind of 0.0.0.0 fails while anything holds the port (a service of this machine
 * holds 2024 on 0.0.0.0, and a port a random pick lands on fails a test once in a while).
 */
export async function freePorts (count, from, span) {
  const free = (port) => new Promise((resolve) => {
    const server = net.createServer().once('error', () => resolve(false))
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)))
  })
  for (let attempt = 0; attempt < 100; attempt++) {
    const ports = Array.from({ length: count }, (_, i) => from + crypto.randomInt(span) + i)
    if ((await Promise.all(ports.map(free))).every(Boolean)) return ports
  }
  throw new Error(`no ${count} consecutive free ports from ${from} to ${from + span + count}`)
}

export function tempDir (prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  fs.chmodSync(dir, 0o755)
  return dir
}

/** A root-owned 0600 file with random content; returns its path and content. */
export function secretFile (dir, name = 'key.pem') {
  const file = path.join(dir, name)
  const content = `secret ${Math.random()}\n`
  fs.writeFileSync(file, content, { mode: 0o600 })
  return { file, content }
}

/** True while `pid` exists and is not a zombie. */
export function alive (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/**
 * One module of src/ as an ES module, for tests that need what the package does not export
 * (the build bundles src/ into dist/index.js, so dist/ holds no per-module file).
 */
export async function importSource (name) {
  const { outputFiles } = await build({
    entryPoints: [new URL(`../src/${name}.ts`, import.meta.url).pathname],
    bundle: true, format: 'esm', platform: 'node', target: 'node20', write: false, logLevel: 'warning'
  })
  return import(`data:text/javascript,${encodeURIComponent(outputFiles[0].text)}`)
}

/**
 * A value as the environment protocol carries it (docs/PROTOCOL.md): `A-Z a-z 0-9 - . _ ~ / [ ]`
 * stay, every other byte of the UTF-8 text becomes `%XX` in upper-case hex. Written from the
 * spec, apart from the Rust encoder, so that the tests check one against the other.
 */
export function percentEncode (text) {
  let out = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte)
    out += /[A-Za-z0-9\-._~/[\]]/.test(c) ? c : '%' + byte.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}

/**
 * Counts of one adversarial class for `npm run security-report`: when SECURITY_REPORT names a
 * file, appends { kind, tried, refused, lost } to it as a JSON line. `kind` is one of the
 * table's rows (bad inputs, hostile child attempts, path attacks, exhaustion cases, leak
 * checks, signal storms); `refused` counts the attempts refused or survived correctly.
 */
export function report (kind, { tried, refused, lost = 0 }) {
  if (process.env.SECURITY_REPORT) fs.appendFileSync(process.env.SECURITY_REPORT, JSON.stringify({ kind, tried, refused, lost }) + '\n')
}

/**
 * Requests to 127.0.0.1:`port` in a loop until `stop()`, which resolves with the stats: `clients`
 * clients, half on keep-alive connections, half on a new connection each time (`secure`: HTTPS,
 * any certificate). `answer(status, body)` is the key a good answer counts under in `answers`,
 * undefined for a failure. Nothing is sent twice: any error, even a reset of a reused
 * keep-alive connection, is a failure.
 */
export function httpLoad (port, { secure = false, clients, answer }) {
  const { Agent, get } = secure ? https : http
  const agent = new Agent({ keepAlive: true, maxSockets: clients / 2, rejectUnauthorized: false })
  // fresh: requests sent on a connection of their own (half the clients), each one connection.
  const stats = { sent: 0, fresh: 0, ok: 0, failed: [], answers: new Map() }
  let running = true
  const one = (keepAlive) => new Promise((resolve) => {
    stats.sent++
    if (!keepAlive) stats.fresh++
    const req = get({ host: '127.0.0.1', port, path: '/', agent: keepAlive ? agent : false, rejectUnauthorized: false }, (res) => {
      let body = ''
      res.on('data', (c) => { body += c }).on('end', () => {
        const key = answer(res.statusCode, body)
        if (key === undefined) {
          stats.failed.push(`${res.statusCode} ${JSON.stringify(body)}`)
        } else {
          stats.ok++
          stats.answers.set(key, (stats.answers.get(key) ?? 0) + 1)
        }
        resolve()
      }).on('error', (err) => { stats.failed.push(err.code); resolve() })
    })
    req.on('error', (err) => {
      stats.failed.push(`${err.code}${req.reusedSocket ? ' (reused)' : ''}`)
      resolve()
    })
  })
  const workers = Array.from({ length: clients }, async (_, i) => { while (running) await one(i % 2 === 0) })
  return { stats, stop: async () => { running = false; await Promise.all(workers); agent.destroy(); return stats } }
}
