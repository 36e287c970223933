// The demo (`npm start`) for real, as root: it binds privileged ports, drops to nobody, answers
// on each endpoint with nobody's uid and the digest of the 0600 key, and drains on SIGTERM.
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import tls from 'node:tls'
import { after, test } from 'node:test'
import { lintExposition, parseExposition, programFamilies, promtool } from './exposition.mjs'
import { freePorts } from './helpers.mjs'

const root = new URL('..', import.meta.url).pathname
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-demo-test-'))
after(() => fs.rmSync(tmp, { recursive: true, force: true }))

function readGreeting (options) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(options)
    socket.once('data', (d) => resolve({ socket, line: String(d) }))
    socket.once('error', reject)
  })
}

function get (mod, options) {
  return new Promise((resolve, reject) => {
    mod.get(options, (res) => {
      let body = ''
      res.on('data', (c) => { body += c }).on('end', () => resolve({ res, body }))
    }).on('error', reject)
  })
}

test('the demo as root: privileged ports, nobody, the key digest on every endpoint, a visible drain on SIGTERM',
  { skip: process.getuid?.() !== 0 && 'needs root', timeout: 60_000 }, async () => {
    const dir = path.join(tmp, 'files')
    const [smtpPort, httpsPort] = await freePorts(2, 700, 250)
    const child = spawn(process.execPath, [path.join(root, 'examples/demo.mjs'), '--dir', dir, '--user', 'nobody',
      '--smtp-port', String(smtpPort), '--https-port', String(httpsPort), '--metrics-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const lines = []
    let stderr = ''
    child.stderr.on('data', (c) => { stderr += c })
    const waiters = []
    readline.createInterface({ input: child.stdout }).on('line', (l) => {
      const line = JSON.parse(l)
      lines.push(line)
      for (const w of [...waiters]) if (w.match(line)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(line) }
    })
    const waitFor = (match) => {
      const seen = lines.find(match)
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ match, resolve }))
    }
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
    try {
      const metricsLine = await waitFor((l) => l.msg === 'listening' && l.listener === 'metrics')
      await waitFor((l) => l.msg?.startsWith('ready'))

      // The key is root's, 0600; the digest every endpoint reports is this file's.
      const keyStat = fs.statSync(path.join(dir, 'key.pem'))
      assert.equal(keyStat.uid, 0)
      assert.equal(keyStat.mode & 0o777, 0o600)
      const digest = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, 'key.pem'))).digest('hex')
      const serving = lines.find((l) => l.msg?.startsWith('serving'))
      assert.equal(serving.uid, 65534)
      assert.ok(lines.some((l) => l.msg?.startsWith('reading the key by its path fails') && l.code === 'EACCES'))

      const smtp = await readGreeting({ port: smtpPort, host: '127.0.0.1' })
      assert.match(smtp.line, new RegExp(`^220 privsep-demo ESMTP smtp uid=65534 key-sha256=${digest}\r\n$`))
      // The root parent said which pid to signal (the one that becomes the monitor).
      assert.ok(lines.some((l) => l.pid === child.pid && l.msg?.startsWith(`the pid to signal is ${child.pid} `)), 'the pid to signal is logged')
      // The unix socket speaks HTTP, as curl --unix-socket expects.
      const unix = JSON.parse((await get(http, { socketPath: path.join(dir, 'demo.sock'), path: '/', agent: false })).body)
      assert.deepEqual([unix.uid, unix.keySha256], [65534, digest])
      // HTTPS offers HTTP/2 through ALPN.
      const alpn = await new Promise((resolve, reject) => {
        const socket = tls.connect({ port: httpsPort, host: '127.0.0.1', ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false }, () => {
          resolve(socket.alpnProtocol)
          socket.destroy()
        }).on('error', reject)
      })
      assert.equal(alpn, 'h2')

      const { res, body } = await get(https, { port: httpsPort, host: '127.0.0.1', path: '/', rejectUnauthorized: false, agent: false })
      const answer = JSON.parse(body)
      assert.equal(answer.uid, 65534)
      assert.equal(answer.keySha256, digest)
      const served = new crypto.X509Certificate(res.socket.getPeerCertificate(true).raw)
      assert.ok(served.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'key.pem')))), 'HTTPS uses the passed key')

      // The README's renewal: --renew makes a new key and certificate, SIGHUP to the root
      // process (the monitor forwards it) makes the child read them through the broker.
      execFileSync(process.execPath, [path.join(root, 'examples/demo.mjs'), '--dir', dir, '--renew'], { stdio: 'ignore' })
      child.kill('SIGHUP')
      await waitFor((l) => l.msg === 'secure context reloaded')
      const renewed = await get(https, { port: httpsPort, host: '127.0.0.1', path: '/', rejectUnauthorized: false, agent: false })
      const now = new crypto.X509Certificate(renewed.res.socket.getPeerCertificate(true).raw)
      assert.notEqual(now.fingerprint256, served.fingerprint256, 'a new certificate without a restart')
      assert.ok(now.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'key.pem')))), 'with the renewed key')
      // The digest it reports is the renewed key's, not the first one's.
      const renewedDigest = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, 'key.pem'))).digest('hex')
      let reported
      for (let i = 0; i < 50 && (reported = JSON.parse(renewed.body).keySha256) !== renewedDigest; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        renewed.body = (await get(https, { port: httpsPort, host: '127.0.0.1', path: '/', rejectUnauthorized: false, agent: false })).body
      }
      assert.equal(reported, renewedDigest)

      const metrics = await get(http, { port: metricsLine.address.port, host: '127.0.0.1', path: '/metrics', agent: false })
      assert.match(metrics.body, /privsep_connections\{protocol="smtp",listener="public"\} 1\n/)
      assert.match(metrics.body, /privsep_connections\{protocol="https",listener="public"\} 0\n/)
      // The program-wide families beside the gauge; promtool (where installed) finds nothing to say.
      const families = parseExposition(metrics.body)
      assert.deepEqual(lintExposition(families), [])
      assert.deepEqual(families.map((f) => [f.name, f.type]), [['privsep_connections', 'gauge'], ...programFamilies])
      assert.match(metrics.body, /privsep_connections_accepted_total\{protocol="smtp",listener="public"\} [1-9]/)
      assert.match(metrics.body, /privsep_generation 1\n/)
      assert.match(metrics.body, /privsep_broker_requests_total\{kind="file",result="ok"\} [1-9]/)
      const tool = promtool()
      if (tool) {
        const checked = spawnSync(tool, ['check', 'metrics'], { input: metrics.body, encoding: 'utf8' })
        assert.equal(checked.status, 0, `promtool check metrics: ${checked.stdout}${checked.stderr}`)
        assert.equal(`${checked.stdout}${checked.stderr}`, '')
      }

      // The SMTP connection stays open through the SIGTERM: the drain closes it.
      const smtpClosed = new Promise((resolve) => smtp.socket.on('close', resolve))
      child.kill('SIGTERM')
      const { code, signal } = await exited
      assert.equal(signal, null, stderr)
      assert.equal(code, 0, stderr)
      await smtpClosed
      const msgs = lines.map((l) => [l.msg, l.protocol && `${l.protocol}/${l.listener}`].filter(Boolean).join(' '))
      const drain = msgs.slice(msgs.indexOf('shutdown started: no longer accepting'))
      for (const expected of ['stopped accepting smtp/public', 'stopped accepting http/local', 'stopped accepting https/public',
        'stopped accepting http/metrics', 'context aborted: cancelling work in flight', 'closing open connections',
        'shutdown done: no connection left', 'bye']) {
        assert.ok(drain.includes(expected), `drain log lacks "${expected}":\n${drain.join('\n')}`)
      }
      assert.equal(lines.find((l) => l.msg === 'shutdown started: no longer accepting').reason, 'SIGTERM')
      assert.deepEqual(lines.find((l) => l.msg === 'closing open connections').open, ['smtp/public=1'])
    } finally {
      child.kill('SIGKILL')
    }
  })

test('the demo with stdout on a file: every line whole and in the order logged, root parent and child, through a SIGTERM drain',
  { skip: process.getuid?.() !== 0 && 'needs root', timeout: 60_000 }, async () => {
    const dir = path.join(tmp, 'files-log-order') // new: the parent makes the key and logs it
    const [smtpPort, httpsPort] = await freePorts(2, 700, 250)
    const logPath = path.join(tmp, 'stdout.log')
    // The demo's default user, privsep-demo: made by the demo itself when missing, as on a fresh machine.
    spawnSync('userdel', ['privsep-demo'])
    const created = spawnSync('id', ['-u', 'privsep-demo']).status !== 0 // userdel refuses while a process of the user runs
    const out = fs.openSync(logPath, 'w')
    const child = spawn(process.execPath, [path.join(root, 'examples/demo.mjs'), '--dir', dir, '--smtp-port', String(smtpPort),
      '--https-port', String(httpsPort), '--metrics-port', '0', '--grace-ms', '200'], { stdio: ['ignore', out, 'pipe'] })
    fs.closeSync(out)
    let stderr = ''
    child.stderr.on('data', (c) => { stderr += c })
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
    try {
      for (let i = 0; i < 300 && !fs.readFileSync(logPath, 'utf8').includes('"msg":"ready'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
      // A connection open through the SIGTERM: the drain has to close it, and logs that.
      const smtp = await readGreeting({ port: smtpPort, host: '127.0.0.1' })
      smtp.socket.on('error', () => {})
      child.kill('SIGTERM')
      const { code, signal } = await exited
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr)
    } finally {
      child.kill('SIGKILL')
    }
    const text = fs.readFileSync(logPath, 'utf8')
    assert.ok(text.endsWith('\n'), 'the last line is whole')
    const lines = text.slice(0, -1).split('\n').map((line) => JSON.parse(line))
    const parentPid = child.pid
    const childPid = lines.find((l) => l.pid !== parentPid)?.pid
    const described = lines.map((l) => `${l.pid === parentPid ? 'parent' : l.pid === childPid ? 'child' : l.pid}: ` +
      [l.msg.replace(/[:;].*/, ''), l.protocol && `${l.protocol}/${l.listener}`].filter(Boolean).join(' '))
    assert.deepEqual(described, [
      'parent: made a self-signed key (0600) and certificate',
      ...(created ? ['parent: created the system user privsep-demo (no home, no login shell) for the demo to run as'] : []),
      'parent: root parent',
      `parent: the pid to signal is ${parentPid} (this process, which becomes privsep-monitor)`,
      'child: serving',
      'child: reading the key by its path fails, as it should',
      'child: listening smtp/public',
      'child: listening http/local',
      'child: listening https/public',
      'child: listening http/metrics',
      'child: ready',
      'child: shutdown started',
      'child: stopped accepting smtp/public',
      'child: stopped accepting http/local',
      'child: stopped accepting https/public',
      'child: stopped accepting http/metrics',
      'child: context aborted',
      'child: closing open connections',
      'child: shutdown done',
      'child: bye'
    ], text)
    for (let i = 1; i < lines.length; i++) assert.ok(lines[i].time >= lines[i - 1].time, `line ${i + 1} was logged before line ${i}:\n${text}`)
  })

test('the demo not as root says how to run it and exits 1', { skip: !fs.existsSync('/usr/sbin/runuser') && 'needs runuser' }, async () => {
  const child = spawn('runuser', ['-u', 'nobody', '--', process.execPath, path.join(root, 'examples/demo.mjs')], { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' })
  let out = ''
  child.stderr.on('data', (c) => { out += c })
  const code = await new Promise((resolve) => child.on('exit', resolve))
  assert.equal(code, 1)
  assert.match(out, /sudo npm start/)
  assert.match(out, /--immediate/)
})
