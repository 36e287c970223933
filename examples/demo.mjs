// The privsep demo (`npm start`, as root): binds an SMTP-like greeting server on a port below
// 1024, an HTTPS server (HTTP/2 and 1.1) on another, an HTTP server on a unix socket and
// /metrics on 127.0.0.1:9464; opens a root-only (0600) TLS key; re-executes itself as the
// user `privsep-demo` (a system user of its own, created on first run) with those descriptors;
// then answers every connection with the child's uid and the sha256 of the key it read through
// the passed descriptor. SIGTERM (or Ctrl-C) drains everything, visibly in the (pino) log.
//
//   sudo npm start                          ports 25 and 443, files under /tmp/privsep-demo
//   sudo node examples/demo.mjs --smtp-port 2525 --https-port 8443 --dir /root/demo
//   npm start -- --immediate                without root: no drop, ports 2525/8443 (filesImmediate)
//   sudo node examples/demo.mjs --renew     a new key and certificate for a running demo; then
//                                           kill -HUP <the pid it logs at start>: it reloads them
//
// The same program runs twice, as the README shows: the calls below bind and open in the root
// parent and return what the parent passed in the child.
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import pino from 'pino'
import promClient from 'prom-client'
import {
  cleanupPassedFiles, configureLifecycle, forkExecUnprivileged, handleSignals, listen, openPrivileged,
  ready, requestFile, restorePassedFiles, serve, setFilesImmediate, shutdown, watchSecureContext
} from 'privsep'

const { values: args } = parseArgs({
  options: {
    immediate: { type: 'boolean', default: false },
    host: { type: 'string', default: '127.0.0.1' },
    'smtp-port': { type: 'string' },
    'https-port': { type: 'string' },
    'metrics-port': { type: 'string', default: '9464' },
    dir: { type: 'string' },
    socket: { type: 'string' },
    user: { type: 'string', default: 'privsep-demo' },
    'grace-ms': { type: 'string', default: '1000' },
    renew: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})
const uid = process.getuid?.() ?? -1
const immediate = args.immediate || process.platform === 'win32'
// Synchronous stdout, as privsep's default logger: each line is written before the call
// returns, so the root parent's and the child's lines land in a file in the order they were
// logged, and the shutdown's last lines are out before the process exits (README, "logger").
const log = pino({ name: 'privsep-demo' }, pino.destination({ dest: 1, sync: true }))

if (args.help || (!immediate && uid !== 0 && process.env.PRIVSEP_FDS === undefined)) {
  process.stderr.write([
    'privsep demo: run it as root; it binds ports below 1024 and reads a root-only key, then',
    'drops to the user "privsep-demo" by itself (a system user it creates on first run):',
    '',
    '  sudo npm start',
    '  sudo node examples/demo.mjs [--smtp-port 25] [--https-port 443] [--metrics-port 9464]',
    '                              [--dir /tmp/privsep-demo] [--socket DIR/demo.sock] [--user privsep-demo]',
    '',
    'Without root, try the development mode (no privilege drop, ports 2525 and 8443):',
    '',
    '  npm start -- --immediate',
    ''
  ].join('\n'))
  process.exit(args.help ? 0 : 1)
}

const dir = args.dir ?? (immediate && uid !== 0 ? path.join(os.tmpdir(), `privsep-demo-${uid}`) : '/tmp/privsep-demo')
const files = { key: path.join(dir, 'key.pem'), cert: path.join(dir, 'cert.pem') }
const socketPath = args.socket ?? path.join(dir, 'demo.sock')
const ports = {
  smtp: Number(args['smtp-port'] ?? (immediate ? 2525 : 25)),
  https: Number(args['https-port'] ?? (immediate ? 8443 : 443)),
  metrics: Number(args['metrics-port'])
}

if (args.renew) {
  prepareFiles(true) // the running demo picks them up on SIGHUP
  log.info({ key: files.key, cert: files.cert }, 'renewed: send SIGHUP to the demo (kill -HUP <pid>) and it serves the new certificate')
  process.exit(0)
}

if (immediate) {
  setFilesImmediate(true)
  log.info('filesImmediate: listening and opening in this process, no privilege drop')
} else {
  restorePassedFiles() // child: take over what the root parent passed (as root: nothing to do)
}
const parent = !immediate && uid === 0
if (parent || immediate) prepareFiles()
if (parent) ensureUser(args.user)
// The lifecycle's logger is the demo's, in the root parent too: privsep logs there the pid to
// signal (this process, which becomes privsep-monitor).
configureLifecycle({ logger: log, graceMs: Number(args['grace-ms']), beforeExit: () => log.info('bye') })

const smtpListener = listen('tcp', `${args.host}:${ports.smtp}`)
const httpsListener = listen('tcp', `${args.host}:${ports.https}`)
const metricsListener = listen('tcp', `127.0.0.1:${ports.metrics}`)
const unixListener = listen('unix', socketPath, { mode: 0o666 }) // anyone may connect; the directory is root's; a stale file from the last run is replaced
const keyFd = openPrivileged(files.key)
const certFd = openPrivileged(files.cert)

if (parent) {
  log.info({ smtp: smtpListener.addr, https: httpsListener.addr, metrics: metricsListener.addr, unix: socketPath, key: files.key },
    'root parent: bound the listeners and opened the key; starting this program again as %s', args.user)
  // Root becomes privsep-monitor here (same pid), which ends the way the child ends.
  await forkExecUnprivileged({ user: args.user })
}

// From here on: the unprivileged child (or, with --immediate, the only process).
cleanupPassedFiles()
const key = fs.readFileSync(keyFd)
const cert = fs.readFileSync(certFd)
const digest = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex')
let keySha256 = digest(key)
const me = { uid: process.getuid?.(), gid: process.getgid?.(), pid: process.pid }
log.info({ ...me, keySha256 }, immediate ? 'serving; read the key in this process (filesImmediate: nothing was passed)' : 'serving; read the key through the passed descriptor')
if (!immediate) {
  try {
    fs.readFileSync(files.key)
    log.error('reading the key by its path worked: the privilege drop did not happen')
  } catch (err) {
    log.info({ code: err.code }, 'reading the key by its path fails, as it should')
  }
}

handleSignals()

const greeting = (label) => `220 privsep-demo ESMTP ${label} uid=${me.uid} key-sha256=${keySha256}\r\n`
function smtp (label) {
  return (socket) => {
    socket.on('error', () => {}) // ERR_PRIVSEP_SHUTDOWN when the drain closes it, or a reset
    socket.write(greeting(label))
    let buffer = ''
    socket.on('data', (chunk) => {
      buffer += chunk
      let eol
      while ((eol = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, eol).trim().toUpperCase()
        buffer = buffer.slice(eol + 1)
        if (shutdown.aborted) {
          socket.end('421 4.3.2 shutting down\r\n')
          return
        }
        if (line === 'QUIT') {
          socket.end('221 2.0.0 bye\r\n')
          return
        }
        socket.write(/^(EHLO|HELO)\b/.test(line) ? `250 privsep-demo uid=${me.uid}\r\n` : '502 5.5.2 not implemented\r\n')
      }
    })
  }
}

const answer = (req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ ...me, keySha256, httpVersion: req.httpVersion }) + '\n')
}
await serve(net.createServer(smtp('smtp')), smtpListener, { protocol: 'smtp', name: 'public' })
await serve(http.createServer(answer), unixListener, { protocol: 'http', name: 'local' })
// HTTP/2 and HTTP/1.1 on one port, chosen by ALPN.
const web = http2.createSecureServer({ key, cert, allowHTTP1: true }, answer)
// SIGHUP (forwarded by the monitor) reads the key and certificate again through the broker;
// the digest the demo reports follows the key it now serves.
watchSecureContext(web, files)
process.on('SIGHUP', () => {
  (immediate ? Promise.resolve(fs.openSync(files.key, 'r')) : requestFile(files.key)).then((fd) => {
    try { keySha256 = digest(fs.readFileSync(fd)) } finally { fs.closeSync(fd) }
  }, (err) => log.warn({ err }, 'could not read the renewed key'))
})
await serve(web, httpsListener, { protocol: 'https', name: 'public' })
await serve(http.createServer(async (req, res) => {
  if (req.url !== '/metrics') {
    res.writeHead(404).end()
    return
  }
  res.setHeader('content-type', promClient.register.contentType)
  res.end(await promClient.register.metrics())
}), metricsListener, { protocol: 'http', name: 'metrics' })
await ready() // systemd (Type=notify) hears READY=1 from the monitor; nothing without systemd
// Each a command of its own (one per array element: a separator could read as a shell pipe).
log.info({
  try: [`nc ${args.host} ${ports.smtp}`, `curl -k https://${args.host}:${ports.https}/`, `curl -k --http2 https://${args.host}:${ports.https}/`,
    `curl --unix-socket ${socketPath} http://localhost/`, `curl http://${metricsListener.addr}/metrics`]
}, 'ready: try each command in "try"')

/**
 * The demo's own system user: created (no home, no login shell) when it does not exist. A
 * shared user such as nobody would let every other daemon running as nobody reach the child.
 */
function ensureUser (name) {
  try {
    execFileSync('id', ['-u', name], { stdio: 'ignore' })
    return
  } catch {
    // Not there yet.
  }
  try {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    log.fatal({ user: name, err: String(err.stderr ?? err.message).trim() }, 'could not create the user %s with useradd: create it (useradd --system --no-create-home --shell /usr/sbin/nologin %s) or pass --user', name, name)
    process.exit(1)
  }
  log.info({ user: name }, 'created the system user %s (no home, no login shell) for the demo to run as', name)
}

/**
 * Makes `dir` (root's, 0711: others may reach the socket by name but not list or write) with
 * a self-signed key (0600) and certificate (0644), unless they exist. Refuses a directory
 * that someone else owns or can write to: root writing there would be a symlink attack.
 */
function prepareFiles (renew = false) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 })
  const st = fs.lstatSync(dir)
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    log.fatal({ dir, owner: st.uid, mode: (st.mode & 0o777).toString(8) }, 'refusing a directory that is not ours alone; pass --dir')
    process.exit(1)
  }
  fs.chmodSync(dir, 0o711)
  if (!renew && fs.existsSync(files.key) && fs.existsSync(files.cert)) return
  const tmpKey = `${files.key}.${process.pid}`
  const tmpCert = `${files.cert}.${process.pid}`
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', tmpKey, '-out', tmpCert, '-days', '365', '-subj', '/CN=localhost'], { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    log.fatal({ err: err.message }, 'could not make a self-signed certificate with the openssl command; install openssl or put key.pem and cert.pem in %s', dir)
    process.exit(1)
  }
  fs.chmodSync(tmpKey, 0o600)
  fs.chmodSync(tmpCert, 0o644)
  fs.renameSync(tmpKey, files.key)
  fs.renameSync(tmpCert, files.cert)
  log.info({ key: files.key, cert: files.cert }, 'made a self-signed key (0600) and certificate')
}
