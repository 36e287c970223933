// The whole flow for real: a root parent binds privileged ports and a unix socket, opens a
// 0600 key, and re-executes itself as nobody, who serves them.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fetchDatagram, fetchStream, nobody, secretFile, start, tempDir } from './helpers.mjs'

describe('a root parent hands its sockets and key to a child running as nobody', () => {
  const dir = tempDir('privsep-e2e-')
  const unixPath = path.join(dir, 'ctl, the socket é.sock')
  const key = secretFile(dir)
  const leak = path.join(dir, 'leaked-fd.txt')
  fs.writeFileSync(leak, 'must not reach the child')
  const digest = crypto.createHash('sha256').update(key.content).digest('hex')
  let run, ready

  before(async () => {
    // Two extra fds without close-on-exec in the parent: one at 3 (where passed fds go) and one higher.
    const leaked = fs.openSync(leak, 'r')
    run = start('core-server.mjs', {
      listen: [['tcp4', '127.0.0.1:81'], ['tcp6', '[::1]:81'], ['udp4', '127.0.0.1:82'], ['udp6', '[::1]:82'], ['unix', unixPath]],
      files: [key.file]
    }, { stdio: ['ignore', 'pipe', 'pipe', leaked, 'ignore', 'ignore', 'ignore', leaked] })
    fs.closeSync(leaked)
    ready = await run.next()
  })
  after(async () => {
    run.child.kill('SIGTERM')
    await run.exited
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('the child serves TCP over IPv4 and IPv6 on port 81', async () => {
    assert.equal(await fetchStream({ host: '127.0.0.1', port: 81 }), `uid 65534 key ${digest}`)
    assert.equal(await fetchStream({ host: '::1', port: 81 }), `uid 65534 key ${digest}`)
  })

  test('the child serves UDP over IPv4 and IPv6 on port 82', async () => {
    assert.equal(await fetchDatagram('udp4', 82, '127.0.0.1'), `uid 65534 key ${digest}`)
    assert.equal(await fetchDatagram('udp6', 82, '::1'), `uid 65534 key ${digest}`)
  })

  test('the child serves a unix socket whose path has a comma, spaces and non-ASCII', async () => {
    assert.equal(await fetchStream({ path: unixPath }), `uid 65534 key ${digest}`)
  })

  test('the child runs with nobody\'s real, effective, saved and fs ids, nobody\'s groups and no capabilities', () => {
    assert.deepEqual(ready.uid, [nobody.uid, nobody.uid, nobody.uid, nobody.uid])
    assert.deepEqual(ready.gid, [nobody.gid, nobody.gid, nobody.gid, nobody.gid])
    assert.deepEqual(ready.groups, [nobody.gid])
    assert.equal(ready.capEff, '0000000000000000')
    assert.equal(ready.capPrm, '0000000000000000')
  })

  test('child cannot regain root after drop', () => {
    assert.equal(ready.setuidError, 'EPERM')
  })

  test('the child reads the 0600 key through the passed fd but cannot open its path', () => {
    assert.equal(ready.openError, 'EACCES')
    assert.equal(fs.statSync(key.file).mode & 0o777, 0o600)
  })

  test('the child holds only stdio, the passed fds, the broker channel and Node\'s own', () => {
    const passed = new Set([...ready.listenerFds, ...ready.keyFds].map(String))
    assert.deepEqual([...passed].sort(), ['3', '4', '5', '6', '7', '8'])
    assert.match(ready.fds['9'], /^socket:/, 'the broker channel, right after the passed fds')
    for (const [fd, target] of Object.entries(ready.fds)) {
      assert.notEqual(target, leak, `fd ${fd} leaked from the parent`)
      if (['0', '1', '2', '9'].includes(fd)) continue
      if (passed.has(fd)) {
        assert.match(target, fd === String(ready.keyFds[0]) ? /key\.pem$/ : /^socket:/)
      } else {
        // Node's own: its event loop, signal pipes, the /proc/self/fd listing itself, and the
        // /dev/null libuv opens when process.stderr (a pipe here) is first written to (privsep
        // warns there on Node 20 when NODE_EXTRA_CA_CERTS is set).
        assert.match(target ?? 'gone', /^(anon_inode:|pipe:|\/proc\/\d+\/fd|\/dev\/null$|gone$)/, `fd ${fd} -> ${target}`)
      }
    }
  })

  test('the child no longer sees the protocol variables', () => {
    assert.deepEqual(ready.env, [])
  })

  test('the parent is the child\'s parent and SIGTERM to it reaches the child', async () => {
    assert.equal(ready.ppid, run.child.pid)
    run.child.kill('SIGTERM')
    assert.deepEqual(await run.next(), { child: 'got SIGTERM' })
    assert.deepEqual(await run.exited, { code: 0, signal: null })
  })
})

// Without a logger, privsep's own lines go to stderr: through fd 2 directly where no stream of
// the process holds data for it (src/index.ts, stderrLine), else through process.stderr.
describe('privsep\'s own lines on stderr', () => {
  // Node ignores NODE_EXTRA_CA_CERTS in the child and privsep says so: not this test's line.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'NODE_EXTRA_CA_CERTS'))
  // The sandbox's state is the kernel's to say (`none` under qemu-user): only its line is compared.
  const ours = (stderr) => stderr.split('\n').filter((line) => /^(privsep|child): /.test(line))
    .map((line) => line.replace(/\d+/g, 'N').replace(/^(privsep: sandbox: ).*/, '$1').slice(0, 40))

  test('come once each, the root\'s then the child\'s, before what the child writes next', async () => {
    const run = start('stderr-lines.mjs', {}, { env })
    assert.deepEqual(await run.exited, { code: 0, signal: null }, run.stderr)
    await new Promise((resolve) => run.child.stderr.readableEnded ? resolve() : run.child.stderr.on('close', resolve))
    assert.deepEqual(ours(run.stderr), [
      'privsep: the child runs as user "nobody", w',
      'privsep: the pid to signal is N (this proc',
      'privsep: sandbox: ',
      'child: restored'
    ].map((line) => line.slice(0, 40)))
  })

  test('come after what process.stderr still holds, even when the pipe has room', async () => {
    const dir = tempDir('privsep-stderr-')
    const go = path.join(dir, 'go')
    const fill = 4 << 20 // more than a pipe or socket pair holds
    const run = start('stderr-lines.mjs', { fill, go }, { env })
    // Part of the fill has arrived: the pipe has room, and the child's stream still queues the rest.
    while (run.stderr.length < 4096) await new Promise((resolve) => setTimeout(resolve, 10))
    assert.ok(!run.stderr.includes('filled'), 'the whole fill went through at once: nothing was queued')
    fs.writeFileSync(go, '')
    assert.deepEqual(await run.exited, { code: 0, signal: null }, run.stderr.slice(-2000))
    await new Promise((resolve) => run.child.stderr.readableEnded ? resolve() : run.child.stderr.on('close', resolve))
    fs.rmSync(dir, { recursive: true, force: true })
    const stderr = run.stderr
    const filled = stderr.indexOf('filled\n')
    const sandbox = stderr.indexOf('privsep: sandbox: ')
    assert.ok(sandbox > filled, `privsep's line came before the end of what the child's stream held (at byte ${sandbox}; the fill ends at ${filled})`)
    assert.equal(stderr.indexOf('~'.repeat(fill) + '\nfilled\n'), stderr.indexOf('~'), 'the fill arrived whole')
    assert.ok(stderr.indexOf('child: restored') > sandbox)
  })
})
