// The unit `privsep print-service` prints, for real: systemd-analyze verify and security on it,
// then the demo under it in a real systemd (scripts/systemd-container.mjs boots this machine's
// own in a throwaway container; the tests skip, saying why, where none can boot): start
// returns once it serves (Type=notify, READY=1 from the monitor), reload renews its key
// (SIGHUP through the monitor), stop drains it, all under the unit's hardening.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import https from 'node:https'
import path from 'node:path'
import tls from 'node:tls'
import { after, test } from 'node:test'
import * as container from '../scripts/systemd-container.mjs'
import { freePorts, httpLoad } from './helpers.mjs'

const root = path.join(import.meta.dirname, '..')
const noContainer = container.unavailable()
const noAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0 ? undefined : 'systemd-analyze is missing: apt-get install systemd'
const inside = (...argv) => container.exec(argv)
/** Writes `text` into the file `file` inside the container. */
const put = (file, text) => container.exec(['sh', '-c', `mkdir -p "$(dirname '${file}')" && cat > '${file}'`], { input: text })
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-systemd-'))
after(() => fs.rmSync(tmp, { recursive: true, force: true }))
const ports = await freePorts(3, 760, 180)

/**
 * The unit for the demo on `ports`, its files in /run/privsep-demo (RuntimeDirectory),
 * printed from a folder under /tmp (which the unit's PrivateTmp= hides from the service).
 */
function printUnit () {
  return execFileSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'print-service', '--user', 'privsep-demo',
    '--runtime-directory', 'privsep-demo', '--', 'node', path.join(root, 'examples', 'demo.mjs'), '--dir', '/run/privsep-demo',
    '--smtp-port', String(ports[0]), '--https-port', String(ports[1]), '--metrics-port', String(ports[2])], { cwd: tmp, encoding: 'utf8' })
}

test("print-service: WorkingDirectory is the program's folder, ExecReload waits for the upgrade, a program PrivateTmp hides is refused", () => {
  const unit = printUnit()
  assert.match(unit, new RegExp(`^WorkingDirectory=${path.join(root, 'examples').replace(/[.]/g, '\\.')}$`, 'm'))
  assert.match(unit, new RegExp(`^ExecReload=${process.execPath} ${path.join(root, 'dist', 'cli.js')} reload --pid \\$MAINPID$`, 'm'))
  const script = path.join(tmp, 'server.mjs')
  fs.writeFileSync(script, '')
  const refused = spawnSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'print-service', '--user', 'nobody', '--', 'node', script], { encoding: 'utf8' })
  assert.equal(refused.status, 1)
  assert.match(refused.stderr, /the working directory \/tmp\/.* is under \/tmp, which the unit's PrivateTmp=yes hides/)
})

test('the printed unit passes systemd-analyze verify and scores at most 3.0 in systemd-analyze security', { skip: noAnalyze }, () => {
  const unit = path.join(tmp, 'privsep-demo.service')
  fs.writeFileSync(unit, printUnit())
  const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' })
  assert.equal(verify.status, 0, verify.stderr)
  assert.equal(verify.stderr.trim(), '', 'verify has nothing to say')
  const security = spawnSync('systemd-analyze', ['security', '--offline=yes', unit], { encoding: 'utf8' })
  const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout)?.[1])
  assert.ok(score <= 3.0, `exposure ${score}:\n${security.stdout.split('\n').slice(-3).join('\n')}`)
  assert.doesNotMatch(fs.readFileSync(unit, 'utf8'), /^MemoryDenyWriteExecute/m, 'V8 needs to write the code it runs')
})

test('in a real systemd: start returns once the demo serves, reload upgrades it (a renewed key, a new generation), SIGHUP renews the key in place, stop drains it', { timeout: 180_000, skip: noContainer }, async () => {
  await container.start(root)
  try {
    // The container's /etc is systemd's factory default: openssl (the demo's key) needs its config.
    put('/etc/ssl/openssl.cnf', fs.readFileSync('/etc/ssl/openssl.cnf'))
    put('/etc/systemd/system/privsep-demo.service', printUnit())
    // The demo's own system user (under ProtectSystem=strict it cannot create it itself).
    assert.equal(inside('useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'privsep-demo').status, 0)
    const demoUid = inside('id', '-u', 'privsep-demo').stdout.trim()
    assert.equal(inside('systemctl', 'daemon-reload').status, 0)

    const start = inside('systemctl', 'start', 'privsep-demo.service')
    assert.equal(start.status, 0, `${start.stderr}\n${inside('journalctl', '-u', 'privsep-demo', '--no-pager', '-o', 'cat').stdout}`)
    // Type=notify: start has returned, so the child already serves.
    const greeting = await new Promise((resolve, reject) => {
      net.connect(ports[0], '127.0.0.1').once('data', (d) => resolve(String(d))).once('error', reject)
    })
    assert.match(greeting, new RegExp(`^220 privsep-demo ESMTP smtp uid=${demoUid} `))
    const main = inside('systemctl', 'show', '-p', 'MainPID', '--value', 'privsep-demo.service').stdout.trim()
    assert.equal(inside('cat', `/proc/${main}/comm`).stdout.trim(), 'privsep-monitor', 'the main process is the monitor')

    const certificate = () => new Promise((resolve, reject) => {
      const socket = tls.connect({ port: ports[1], host: '127.0.0.1', rejectUnauthorized: false }, () => {
        resolve(socket.getPeerCertificate().fingerprint256)
        socket.destroy()
      }).on('error', reject)
    })
    const journal = () => inside('journalctl', '-u', 'privsep-demo', '--no-pager', '-o', 'cat').stdout
    const eventually = async (pattern) => {
      for (let i = 0; i < 100 && !pattern.test(journal()); i++) await new Promise((resolve) => setTimeout(resolve, 100))
      return journal()
    }
    const renew = () => assert.equal(inside('node', path.join(root, 'examples', 'demo.mjs'), '--dir', '/run/privsep-demo', '--renew').status, 0)

    // systemctl reload: an upgrade, under an HTTPS load (keep-alive and new connections). The
    // new generation opens the renewed key and takes over; no request fails.
    const first = await certificate()
    renew()
    const traffic = httpLoad(ports[1], { secure: true, clients: 4, answer: (status, body) => status === 200 ? JSON.parse(body).pid : undefined })
    await new Promise((resolve) => setTimeout(resolve, 300))
    const servedBy = async () => JSON.parse(await new Promise((resolve, reject) => {
      https.get({ port: ports[1], host: '127.0.0.1', rejectUnauthorized: false, agent: false }, (res) => {
        let body = ''
        res.on('data', (chunk) => { body += chunk }).on('end', () => resolve(body))
      }).on('error', reject)
    })).pid
    const reload = () => {
      const done = inside('systemctl', 'reload', 'privsep-demo.service')
      assert.equal(done.status, 0, `${done.stderr}\n${journal().split('\n').slice(-12).join('\n')}`)
    }
    // A new generation answers: at once, or after the old one has handled its SIGTERM (it may
    // take a connection or two until then).
    const servedByAnother = async (previous) => {
      let pid
      for (let i = 0; i < 50 && (pid = await servedBy()) === previous; i++) await new Promise((resolve) => setTimeout(resolve, 20))
      return pid
    }
    const before = await servedBy()
    reload()
    assert.notEqual(await servedByAnother(before), before, 'a second generation serves once reload returns')
    await new Promise((resolve) => setTimeout(resolve, 500))
    const load = await traffic.stop()
    console.log(`reload under load: ${load.sent} sent, ${load.ok} ok, ${load.failed.length} failed; pids ${[...load.answers.keys()].join(' ')}`)
    assert.deepEqual(load.failed, [], 'every request during the reload answered whole')
    assert.equal(load.ok, load.sent)
    assert.equal(load.answers.size, 2, 'both generations served requests')
    let second
    for (let i = 0; i < 50 && (second = await certificate()) === first; i++) await new Promise((resolve) => setTimeout(resolve, 100))
    assert.notEqual(second, first, 'the new generation serves the renewed certificate')
    assert.equal(inside('systemctl', 'show', '-p', 'MainPID', '--value', 'privsep-demo.service').stdout.trim(), main, 'the same main process')

    // Nine more: each time reload returns, the unit is active/running and a new generation answers.
    for (let i = 0; i < 9; i++) {
      const previous = await servedBy()
      reload()
      assert.equal(inside('systemctl', 'show', '-p', 'ActiveState', '-p', 'SubState', '--value', 'privsep-demo.service').stdout, 'active\nrunning\n')
      assert.notEqual(await servedByAnother(previous), previous, `reload ${i + 2}: a new generation answers`)
    }
    second = await certificate()

    // SIGHUP: the key again, in place, without a new generation.
    renew()
    assert.equal(inside('systemctl', 'kill', '--kill-whom=main', '-s', 'HUP', 'privsep-demo.service').status, 0)
    assert.match(await eventually(/secure context reloaded/), /secure context reloaded/)
    assert.notEqual(await certificate(), second, 'the renewed certificate, without a restart')

    assert.equal(inside('systemctl', 'stop', 'privsep-demo.service').status, 0)
    assert.equal(inside('systemctl', 'show', '-p', 'Result', '--value', 'privsep-demo.service').stdout.trim(), 'success', journal().split('\n').slice(-12).join('\n'))
    assert.match(journal(), /shutdown done: no connection left/, 'the drain ran to its end')
  } finally {
    container.stop()
  }
})

test('a real .socket unit activates the program, as root (handed to the monitor), with User=nobody (no root), and for some of its listeners (the rest bound as usual)', { timeout: 180_000, skip: noContainer }, async () => {
  const program = path.join(root, '__test__', 'fixtures', 'activated.mjs')
  await container.start(root)
  try {
    for (const [name, port, user] of [['asroot', ports[0], null], ['asnobody', ports[1], 'nobody']]) {
      const config = JSON.stringify({ listen: [['tcp4', `127.0.0.1:${port}`, 'web']] })
      const socketUnit = `[Socket]\nListenStream=127.0.0.1:${port}\nFileDescriptorName=web\n\n[Install]\nWantedBy=sockets.target\n`
      const serviceUnit = `[Service]\nExecStart=${process.execPath} ${program} '${config}'\n${user ? `User=${user}\n` : ''}`
      put(`/etc/systemd/system/privsep-${name}.socket`, socketUnit)
      put(`/etc/systemd/system/privsep-${name}.service`, serviceUnit)
      assert.equal(inside('systemctl', 'daemon-reload').status, 0)
      const start = inside('systemctl', 'start', `privsep-${name}.socket`)
      assert.equal(start.status, 0, start.stderr)
      // The first connection starts the service; it waits in the backlog until the child accepts.
      const answer = await new Promise((resolve, reject) => {
        let data = ''
        net.connect(port, '127.0.0.1').on('data', (d) => { data += d }).on('end', () => resolve(data)).on('error', reject)
      })
      const journal = inside('journalctl', '-u', `privsep-${name}.service`, '--no-pager', '-o', 'cat').stdout
      assert.equal(answer, 'uid 65534 web\n', journal)
      inside('systemctl', 'stop', `privsep-${name}.service`, `privsep-${name}.socket`)
    }

    // A .socket unit for one of the program's two listeners: the other is bound as usual.
    const [activated, bound] = [ports[2], ports[0]]
    const config = JSON.stringify({ listen: [['tcp4', `127.0.0.1:${bound}`], ['tcp4', `127.0.0.1:${activated}`]] })
    put('/etc/systemd/system/privsep-partial.socket', `[Socket]\nListenStream=127.0.0.1:${activated}\n`)
    put('/etc/systemd/system/privsep-partial.service', `[Service]\nExecStart=${process.execPath} ${program} '${config}'\n`)
    assert.equal(inside('systemctl', 'daemon-reload').status, 0)
    assert.equal(inside('systemctl', 'start', 'privsep-partial.socket').status, 0)
    const fetch = (port) => new Promise((resolve, reject) => {
      let data = ''
      net.connect(port, '127.0.0.1').on('data', (d) => { data += d }).on('end', () => resolve(data)).on('error', reject)
    })
    assert.equal(await fetch(activated), `uid 65534 127.0.0.1:${activated}\n`)
    assert.equal(await fetch(bound), `uid 65534 127.0.0.1:${bound}\n`)
    const journal = inside('journalctl', '-u', 'privsep-partial.service', '--no-pager', '-o', 'cat').stdout
    assert.match(journal, new RegExp(`socket activation: 1 listener\\(s\\) from systemd \\(tcp4 127\\.0\\.0\\.1:${activated}\\), 1 bound here \\(tcp4 127\\.0\\.0\\.1:${bound}\\)`))
    assert.equal(inside('systemctl', 'is-active', 'privsep-partial.service').stdout.trim(), 'active')
    inside('systemctl', 'stop', 'privsep-partial.service', 'privsep-partial.socket')
  } finally {
    container.stop()
  }
})
