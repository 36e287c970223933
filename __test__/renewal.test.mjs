// Key renewal without a restart, on a Let's Encrypt-shaped tree made with openssl: root's 0700
// live/ and archive/, live/ symlinks into ../../archive/ switched the way certbot does, SIGHUP
// to the root process (the monitor forwards it), and a TLS client that reads the serial.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { after, test } from 'node:test'
import { start, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-renewal-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))
const archive = path.join(dir, 'letsencrypt', 'archive', 'example.org')
const live = path.join(dir, 'letsencrypt', 'live', 'example.org')
for (const folder of [archive, live]) fs.mkdirSync(folder, { recursive: true })
for (const folder of ['archive', 'live']) fs.chmodSync(path.join(dir, 'letsencrypt', folder), 0o700)

/** Generation `n`: a key and a certificate with serial n (with `keyOf`, another generation's key). */
function generation (n, keyOf = n) {
  const key = path.join(archive, `privkey${n}.pem`)
  const cert = path.join(archive, `fullchain${n}.pem`)
  if (keyOf === n) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=example.org', '-set_serial', String(n)], { stdio: 'ignore' })
  } else {
    // A certificate for another key than the one this generation ships: they do not match.
    const other = path.join(dir, `other${n}.pem`)
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', other, '-out', cert, '-days', '1', '-subj', '/CN=example.org', '-set_serial', String(n)], { stdio: 'ignore' })
    fs.copyFileSync(path.join(archive, `privkey${keyOf}.pem`), key)
  }
  fs.chmodSync(key, 0o600)
}

/** Points live/ at generation `n` as certbot does: a new link renamed over the old one. */
function switchTo (n) {
  for (const [name, file] of [['privkey.pem', `privkey${n}.pem`], ['fullchain.pem', `fullchain${n}.pem`]]) {
    fs.symlinkSync(`../../archive/example.org/${file}`, path.join(live, `${name}.new`))
    fs.renameSync(path.join(live, `${name}.new`), path.join(live, name))
  }
}

const connect = () => new Promise((resolve, reject) => {
  const socket = tls.connect({ host: '127.0.0.1', port: 91, rejectUnauthorized: false }, () => resolve(socket))
  socket.on('error', reject)
})
const serial = async () => {
  const socket = await connect()
  const value = socket.getPeerCertificate().serialNumber
  socket.destroy()
  return value
}
const echo = (socket, text) => new Promise((resolve) => { socket.once('data', (data) => resolve(String(data))); socket.write(text) })

test('SIGHUP renews the key through the broker; open connections keep working; a mismatched key keeps the old one', async () => {
  generation(1)
  generation(2)
  generation(3, 1) // certificate 3 with key 1: broken
  switchTo(1)
  const run = start('renewal.mjs', { address: '127.0.0.1:91', key: path.join(live, 'privkey.pem'), cert: path.join(live, 'fullchain.pem') })
  try {
    await run.next()
    assert.equal(await serial(), '01')
    const before = await connect()

    switchTo(2)
    run.child.kill('SIGHUP')
    for (;;) if ((await run.next()).msg === 'secure context reloaded') break
    assert.equal(await serial(), '02')
    assert.equal(await echo(before, 'still here'), 'still here', 'a connection opened before the renewal keeps working')

    switchTo(3)
    run.child.kill('SIGHUP')
    let line
    for (;;) if ((line = await run.next()).msg === 'secure context not reloaded; the old one stays') break
    assert.equal(line.err.code, 'ERR_PRIVSEP_TLS_CONTEXT')
    assert.match(line.err.message, /key values mismatch|mismatch/i)
    assert.equal(line.err.type, 'PrivsepError', 'logged as the error it is, not as a plain object')
    assert.match(line.err.stack, /^PrivsepError: .*\n\s+at /)
    assert.equal(await serial(), '02', 'the old context stays')
    before.destroy()
  } finally {
    run.child.kill('SIGTERM')
    await run.exited
  }
})
