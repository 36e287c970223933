// The broker: the child asks its monitor for files and listeners at run time, under the policy
// given to forkExecUnprivileged. Round trips, refusals, and a hostile child speaking the
// protocol by hand (fixtures/hostile.py). Real processes as root and nobody.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, afterEach, describe, test } from 'node:test'
import { alive, fetchStream, nobody, report, start, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-broker-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))
const sha = (text) => crypto.createHash('sha256').update(text).digest('hex')

const key = path.join(dir, 'key.pem')
fs.writeFileSync(key, 'key, generation 1\n', { mode: 0o600 })
const keys = path.join(dir, 'keys') // an allowed folder, root's, with a folder nobody owns in it
fs.mkdirSync(path.join(keys, 'user'), { recursive: true })
fs.chownSync(path.join(keys, 'user'), nobody.uid, nobody.gid)
fs.writeFileSync(path.join(keys, 'other.pem'), 'other key\n', { mode: 0o600 })

const runs = []
afterEach(() => {
  for (const run of runs.splice(0)) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL')
})

/** Runs fixtures/broker.mjs until its steps are done; returns the run, its ready line and the step reports. */
async function broker (config) {
  const run = start('broker.mjs', { listen: [['tcp4', '127.0.0.1:88']], files: [key], ...config })
  runs.push(run)
  const ready = await run.next()
  assert.equal(ready.ready, true, JSON.stringify(ready))
  const steps = []
  for (;;) {
    const line = await run.next(120_000)
    if (line.done) break
    steps.push(line)
  }
  return { run, ready, steps }
}

describe('round trips', () => {
  test('a file opened at start, a listener held at start, a listener added by policy; a denied path and address', async () => {
    fs.writeFileSync(key, 'key, generation 2\n') // renewed in place after the start
    const { run, steps } = await broker({
      allow: { listeners: [['tcp4', '127.0.0.1:89']], folders: [keys] },
      steps: [
        ['file', key],
        ['file', path.join(keys, 'other.pem')],
        ['listener', 'tcp4', '127.0.0.1:88'],
        ['listener', 'tcp4', '127.0.0.1:89'],
        ['listener', 'tcp4', '127.0.0.1:89'],
        ['file', '/etc/shadow'],
        ['listener', 'tcp4', '127.0.0.1:90'],
        ['file', path.join(dir, 'missing.pem')],
        ['overlap', 200, key, path.join(keys, 'other.pem')]
      ]
    })
    const [file, other, held, added, again, shadow, address, missing, overlap] = steps
    assert.equal(file.ok, sha('key, generation 2\n'))
    assert.equal(other.ok, sha('other key\n'))
    assert.equal(held.ok, held.held, 'the listener held at start comes back as the same socket, not a second bind')
    assert.match(added.ok, /^socket:/)
    assert.equal(again.ok, added.ok, 'a listener asked for again is the one the monitor already holds')
    assert.equal(await fetchStream({ host: '127.0.0.1', port: 89 }), `uid ${nobody.uid}`)
    assert.equal(shadow.code, 'ERR_PRIVSEP_DENIED', shadow.message)
    assert.equal(address.code, 'ERR_PRIVSEP_DENIED', address.message)
    assert.equal(missing.code, 'ERR_PRIVSEP_DENIED', 'only what the policy names may be asked for')
    assert.deepEqual(overlap.ok, { [key]: [sha('key, generation 2\n')], [path.join(keys, 'other.pem')]: [sha('other key\n')] },
      '200 requests in flight at once, each answered with its own file')
    assert.match(run.stderr, /denied the child's request for file \/etc\/shadow/)
    run.child.kill('SIGTERM')
    assert.deepEqual(await run.exited, { code: 0, signal: null })
  })

  test('an allowed path the monitor cannot open safely: ERR_PRIVSEP_UNSAFE_PATH; a missing one: ENOENT', async () => {
    fs.writeFileSync(path.join(keys, 'user', 'mine.pem'), 'mine')
    const { steps } = await broker({
      allow: { folders: [keys] },
      steps: [['file', path.join(keys, 'user', 'mine.pem')], ['file', path.join(keys, 'nothing.pem')]]
    })
    assert.equal(steps[0].code, 'ERR_PRIVSEP_UNSAFE_PATH', steps[0].message)
    assert.equal(steps[1].code, 'ENOENT', steps[1].message)
  })

  test('without a broker: ERR_PRIVSEP_BROKER_CLOSED; with filesImmediate the process opens and binds itself', async () => {
    const script = `import { Privsep } from 'privsep'
      const p = new Privsep(); const out = []
      for (const f of [() => p.requestFile('/etc/hostname'), () => p.requestListener('tcp4', '127.0.0.1:0')]) {
        try { await f(); out.push('ok') } catch (err) { out.push(err.code) }
      }
      p.filesImmediate = true
      out.push(typeof await p.requestFile('/etc/hostname'), typeof (await p.requestListener('tcp4', '127.0.0.1:0')).fd)
      console.log(JSON.stringify(out))`
    const file = path.join(dir, 'nobroker.mjs')
    fs.writeFileSync(file, script)
    fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true })
    fs.symlinkSync(path.join(import.meta.dirname, '..'), path.join(dir, 'node_modules', 'privsep'), 'dir')
    const result = spawnSync(process.execPath, [file], { uid: nobody.uid, gid: nobody.gid, encoding: 'utf8' })
    const lines = [JSON.parse(result.stdout || 'null')]
    assert.deepEqual(lines[0], ['ERR_PRIVSEP_BROKER_CLOSED', 'ERR_PRIVSEP_BROKER_CLOSED', 'number', 'number'])
  })
})

describe('a hostile child speaking the protocol by hand', () => {
  for (const mode of ['garbage', 'truncated', 'oversized', 'unknown', 'version', 'nul', 'fds']) {
    test(`${mode}: the monitor cuts the channel, answers nothing, and the program keeps serving`, async () => {
      const { run, ready, steps } = await broker({ steps: [['hostile', mode], ['file', key]] })
      const [hostile, after] = steps
      assert.equal(hostile.status, 0)
      report('hostile child attempts', { tried: 1, refused: hostile.ok.cut === 1 && hostile.ok.ok === 0 ? 1 : 0, lost: hostile.ok.ok })
      assert.deepEqual({ attempts: hostile.ok.attempts, cut: hostile.ok.cut, ok: hostile.ok.ok, refused: hostile.ok.refused }, { attempts: 1, cut: 1, ok: 0, refused: 0 })
      if (mode === 'fds') assert.equal(hostile.ok.fd_closed_by_monitor, true, 'the monitor kept a descriptor the child attached')
      assert.equal(after.code, 'ERR_PRIVSEP_BROKER_CLOSED', 'the channel stays closed')
      // The monitor's line reaches the pipe on its own time: after the child's report, maybe.
      for (let i = 0; i < 100 && !/closing the broker channel/.test(run.stderr); i++) await new Promise((resolve) => setTimeout(resolve, 20))
      assert.match(run.stderr, /closing the broker channel/)
      assert.ok(alive(run.child.pid) && alive(ready.pid))
      assert.equal(await fetchStream({ host: '127.0.0.1', port: 88 }), `uid ${nobody.uid}`)
      run.child.kill('SIGTERM')
      assert.deepEqual(await run.exited, { code: 0, signal: null }, 'the monitor ends as its child did: it did not crash')
    })
  }

  test('planted symlinks, .., NUL-free long paths, a swap race and a flood: nothing outside the policy is opened', async () => {
    const { run, ready, steps } = await broker({
      allow: { folders: [keys] },
      steps: [['hostile', 'requests', keys, key], ['file', key]]
    })
    const counts = steps[0].ok
    assert.equal(steps[0].status, 0)
    // 4 planted links, 6 odd paths, 1 listener, 1 notification as the main process, 500
    // racing requests: every one refused.
    const hostileRequests = 4 + 6 + 1 + 1 + 500
    // For the security report: the 510 path attacks, and the listener, the notification, the
    // flood and the burst as hostile child attempts (every refusal is one of the 512 above).
    const refusedAll = counts.refused === hostileRequests
    report('path attacks', { tried: 510, refused: refusedAll ? 510 : 0 })
    report('hostile child attempts', { tried: 4, refused: (refusedAll ? 2 : 0) + (counts.ok === 2000 ? 1 : 0) + (counts.burst_sent > 0 ? 1 : 0) })
    assert.equal(counts.ok, 2000, 'the flood of allowed requests is answered one by one')
    assert.equal(counts.refused, hostileRequests, JSON.stringify(counts))
    assert.deepEqual(counts.codes.sort(), ['ERR_PRIVSEP_DENIED', 'ERR_PRIVSEP_UNSAFE_PATH'], JSON.stringify(counts.examples))
    assert.ok(counts.burst_sent > 0)
    console.log(`hostile requests: ${counts.attempts} attempts, ${counts.refused} refused, ${counts.ok} allowed, burst of ${counts.burst_sent} unread`)
    // The monitor still runs, holds no descriptor the child sent, and the program serves.
    assert.ok(alive(run.child.pid) && alive(ready.pid))
    const fds = fs.readdirSync(`/proc/${run.child.pid}/fd`).length
    assert.ok(fds <= 8, `the monitor holds ${fds} descriptors`)
    assert.equal(await fetchStream({ host: '127.0.0.1', port: 88 }), `uid ${nobody.uid}`)
    run.child.kill('SIGTERM')
    assert.deepEqual(await run.exited, { code: 0, signal: null })
  })
})
