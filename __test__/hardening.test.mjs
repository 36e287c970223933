// Issue 19, hardening round 3: what the untrusted side (the child as nobody, or any other
// process of nobody's) could do to the root monitor, each attack run for real against a real
// monitor: its shared stderr, forged log lines, a socket that lingers, a stopped start, a
// generation that ignores SIGTERM, a leftover held by a tracer, the mode of a unix socket.
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, afterEach, describe, test } from 'node:test'
import { alive, fetchStream, fixtures, nobody, report, start, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-hardening-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))

const runs = []
/** Processes a stopper stopped: killed after each test, whatever the monitor did with them. */
const stoppedPids = []
afterEach(() => {
  for (const run of runs.splice(0)) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL')
  for (const pid of stoppedPids.splice(0)) try { process.kill(pid, 'SIGKILL') } catch {}
})

/** Starts fixtures/broker.mjs (a program as root, then as nobody) and waits for its child's ready line. */
async function program (config, options) {
  const run = start('broker.mjs', { listen: [['tcp4', '127.0.0.1:61']], ...config }, options)
  runs.push(run)
  const ready = await run.next()
  assert.equal(ready.ready, true, JSON.stringify(ready))
  return { run, ready }
}

/** The step reports of fixtures/broker.mjs until its `done` line. */
async function steps (run) {
  const out = []
  for (;;) {
    const line = await run.next(60_000)
    if (line.done) return out
    out.push(line)
  }
}

/** SIGTERM to the monitor: it must end as its child does (exit 0), not crash. */
async function stop (run) {
  run.child.kill('SIGTERM')
  return run.exited
}

describe('the monitor\'s log (T3-4, T3-7)', () => {
  test('stderr made non-blocking and filled by the child: the monitor drops its lines and serves on (no panic, no exit 101)', async () => {
    // A FIFO nobody reads, as root's stderr: once the child fills it, it stays full.
    const fifo = path.join(dir, 'stderr.fifo')
    assert.equal(spawnSync('mkfifo', ['-m', '600', fifo]).status, 0)
    const stderr = fs.openSync(fifo, 'r+')
    try {
      const { run, ready } = await program({ steps: [['hostile', 'stderr-full'], ['file', '/etc/shadow']] }, { stdio: ['ignore', 'pipe', stderr] })
      const [hostile, denied] = await steps(run)
      assert.equal(hostile.status, 0, JSON.stringify(hostile))
      assert.ok(hostile.ok.filled > 0, JSON.stringify(hostile.ok))
      assert.equal(hostile.ok.refused, 2, JSON.stringify(hostile.ok))
      assert.equal(denied.code, 'ERR_PRIVSEP_DENIED', 'the broker still answers')
      assert.ok(hostile.ok.ms < 1000, `a denied request took ${hostile.ok.ms} ms to answer with stderr full`)
      assert.ok(alive(run.child.pid) && alive(ready.pid))
      assert.equal(await fetchStream({ host: '127.0.0.1', port: 61 }), `uid ${nobody.uid}`)
      const ended = await stop(run)
      report('hostile child attempts', { tried: 1, refused: ended.code === 0 ? 1 : 0, lost: ended.code === 0 ? 0 : 1 })
      assert.deepEqual(ended, { code: 0, signal: null }, 'the monitor died of its log')
    } finally {
      fs.closeSync(stderr)
    }
  })

  test('the socket behind stderr shut down by the child (EPIPE): the monitor serves on', async () => {
    const { run, ready } = await program({ steps: [['hostile', 'stderr-shut'], ['file', '/etc/shadow']] })
    const [hostile, denied] = await steps(run)
    assert.equal(hostile.status, 0, JSON.stringify(hostile))
    assert.equal(hostile.ok.refused, 2, JSON.stringify(hostile.ok))
    assert.equal(denied.code, 'ERR_PRIVSEP_DENIED')
    assert.ok(alive(run.child.pid) && alive(ready.pid))
    const ended = await stop(run)
    report('hostile child attempts', { tried: 1, refused: ended.code === 0 ? 1 : 0, lost: ended.code === 0 ? 0 : 1 })
    assert.deepEqual(ended, { code: 0, signal: null }, 'the monitor died of its log')
  })

  test('paths and addresses with newlines, returns and escapes forge no line in root\'s log', async () => {
    const { run } = await program({ steps: [['hostile', 'forge']] })
    const [hostile] = await steps(run)
    assert.equal(hostile.ok.refused, 5, JSON.stringify(hostile.ok))
    await stop(run)
    const lines = run.stderr.split('\n')
    const forged = lines.filter((line) => /^privsep-monitor: forged/.test(line) || /[\r\x1b\x07\x7f\u2028]/.test(line))
    report('hostile child attempts', { tried: 5, refused: forged.length === 0 ? 5 : 0, lost: forged.length === 0 ? 0 : 5 })
    assert.deepEqual(forged, [], run.stderr)
    assert.ok(lines.some((line) => line.includes('denied the child\'s request for file /x\\nprivsep-monitor: forged by the child')), run.stderr)
  })
})

describe('what the child sends and asks for (T3-8, T3-10, T3-11)', () => {
  test('a lingering TCP socket attached to a request is closed without waiting: the channel is cut at once', async () => {
    const { run, ready } = await program({ steps: [['hostile', 'linger']] })
    const [hostile] = await steps(run)
    assert.equal(hostile.ok.cut, 1, JSON.stringify(hostile.ok))
    const quick = hostile.ok.ms < 2000
    report('hostile child attempts', { tried: 1, refused: quick ? 1 : 0, lost: quick ? 0 : 1 })
    assert.ok(quick, `the monitor took ${hostile.ok.ms} ms to close the child's socket`)
    assert.ok(alive(run.child.pid) && alive(ready.pid))
    assert.deepEqual(await stop(run), { code: 0, signal: null })
  })

  test('a unix socket bound through the broker: the mode the child asks for (0o7777) is not applied; its file is removed at the end', async () => {
    const socketPath = path.join(dir, 'asked.sock')
    const { run } = await program({ allow: { listeners: [['unix', socketPath]] }, steps: [['hostile', 'listener-mode', socketPath]] })
    const [hostile] = await steps(run)
    assert.equal(hostile.ok.ok, 1, JSON.stringify(hostile.ok))
    const { mode, uid } = fs.statSync(socketPath)
    assert.equal(uid, 0, 'root binds it')
    const chosen = (mode & 0o7002) !== 0
    report('hostile child attempts', { tried: 1, refused: chosen ? 0 : 1, lost: chosen ? 1 : 0 })
    assert.equal(mode & 0o7002, 0, `the socket file has mode ${(mode & 0o7777).toString(8)}: the child chose it`)
    assert.deepEqual(await stop(run), { code: 0, signal: null })
    assert.equal(fs.existsSync(socketPath), false, 'the socket file bound through the broker outlived the program')
  })
})

/** `promise`, or 'timeout' after `ms`. */
const within = (promise, ms) => Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve('timeout'), ms).unref())])

describe('ending what runs as nobody (T3-5, T3-6)', () => {
  test('a retired generation that ignores SIGTERM gets SIGKILL after the grace (readyTimeoutMs), also when the program stops meanwhile', async () => {
    const run = start('generations.mjs', { address: '127.0.0.1:62', ignoreTerm: [1], spawn: { readyTimeoutMs: 1500 } })
    runs.push(run)
    const first = await run.next()
    assert.equal(first.ready, 1, JSON.stringify(first))
    run.child.kill('SIGUSR2')
    assert.equal((await run.next()).ready, 2)
    run.child.kill('SIGTERM') // the stop, while generation 1 "drains"
    const ended = await within(run.exited, 15_000)
    report('hostile child attempts', { tried: 1, refused: ended !== 'timeout' ? 1 : 0, lost: ended !== 'timeout' ? 0 : 1 })
    assert.deepEqual(ended, { code: 0, signal: null }, 'the monitor waited for the retired generation forever')
    assert.equal(alive(first.pid), false)
    assert.match(run.stderr, /generation 1 had not ended 1500 ms after SIGTERM: killed \(SIGKILL\)/)
  })

  test('a leftover traced by another process of nobody\'s (which never reaps it) holds the monitor\'s end for a bounded time only', async () => {
    // The leftover is python, which the sandbox would not let the child execute: off here.
    const run = start('generations.mjs', { address: '127.0.0.1:63', leftover: true, spawn: { sandbox: false } })
    runs.push(run)
    const { leftover } = await run.next()
    assert.equal((await run.next()).ready, 1)
    const tracer = spawn('/usr/bin/python3', [path.join(fixtures, 'tracer.py'), String(leftover)], { uid: nobody.uid, gid: nobody.gid, stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const said = await new Promise((resolve) => tracer.stdout.once('data', (chunk) => resolve(String(chunk).trim())))
      assert.equal(said, 'attached')
      run.child.kill('SIGTERM')
      const ended = await within(run.exited, 15_000)
      report('hostile child attempts', { tried: 1, refused: ended !== 'timeout' ? 1 : 0, lost: ended !== 'timeout' ? 0 : 1 })
      assert.deepEqual(ended, { code: 0, signal: null }, 'the monitor waited for the traced leftover forever')
      assert.match(run.stderr, /1 process\(es\) the program left behind were sent SIGKILL but could not be reaped within 3000 ms/)
    } finally {
      tracer.kill('SIGKILL')
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal(alive(leftover), false, 'the leftover outlived its tracer')
  })
})

/** fixtures/stopper.py as nobody, watching the children of `monitor` but `known`. */
function stopper (monitor, known = []) {
  const run = spawn('/usr/bin/python3', [path.join(fixtures, 'stopper.py'), String(monitor), ...known.map(String)],
    { uid: nobody.uid, gid: nobody.gid, stdio: ['ignore', 'pipe', 'inherit'] })
  const said = new Promise((resolve) => {
    let out = ''
    run.stdout.on('data', (chunk) => { out += chunk }).on('end', () => resolve(JSON.parse(out || '{"pid":null}')))
  }).then((stopped) => {
    if (stopped.beforeExec) stoppedPids.push(stopped.pid)
    return stopped
  })
  return { run, said }
}

describe('a start stopped before exec by a process of nobody\'s (T3-3)', () => {
  /** Starts the program until fixtures/stopper.py catches its first start before exec. */
  async function stuckFirstStart (readyTimeoutMs) {
    for (let attempt = 1; attempt <= 10; attempt++) {
      const run = start('generations.mjs', { address: '127.0.0.1:64', spawn: { readyTimeoutMs } })
      runs.push(run)
      const stopped = await stopper(run.child.pid).said
      if (stopped.beforeExec) {
        console.log(`stopped before exec at attempt ${attempt}`)
        return { run, stopped }
      }
      run.child.kill('SIGKILL')
      await run.exited
    }
    assert.fail('the stopper never caught a start before its exec in 10 attempts')
  }

  test('the first start: the monitor kills it after readyTimeoutMs and ends with a clear error', async () => {
    const { run, stopped } = await stuckFirstStart(1500)
    const ended = await within(run.exited, 15_000)
    report('hostile child attempts', { tried: 1, refused: ended !== 'timeout' ? 1 : 0, lost: ended !== 'timeout' ? 0 : 1 })
    assert.deepEqual(ended, { code: 126, signal: null }, 'the monitor blocked in the start')
    assert.match(run.stderr, /ERR_PRIVSEP_OS: execve starting .* as user "nobody": the child had not reached exec after 1500 ms .* and was killed/)
    assert.equal(alive(stopped.pid), false, 'the stopped start was left behind')
  })

  test('the first start: SIGTERM meanwhile is served at once (not after readyTimeoutMs): the start is killed, the monitor ends', async () => {
    const { run, stopped } = await stuckFirstStart(600_000)
    run.child.kill('SIGTERM')
    const ended = await within(run.exited, 15_000)
    report('signal storms', { tried: 1, refused: ended !== 'timeout' ? 1 : 0, lost: ended !== 'timeout' ? 0 : 1 })
    assert.deepEqual(ended, { code: 126, signal: null }, 'SIGTERM was lost while the monitor waited for the start')
    assert.match(run.stderr, /signal 15 arrived before the child reached exec; it was killed/)
    assert.equal(alive(stopped.pid), false, 'the stopped start was left behind')
  })

  test('an upgrade: the stuck start is killed at the deadline, the old generation serves on, and the program stops', async () => {
    const run = start('generations.mjs', { address: '127.0.0.1:65', spawn: { readyTimeoutMs: 1500 } })
    runs.push(run)
    const first = await run.next()
    assert.equal(first.ready, 1)
    let caught = false
    const known = [first.pid] // every generation so far, a retired one may not have ended yet
    for (let attempt = 1; attempt <= 10 && !caught; attempt++) {
      const { said } = stopper(run.child.pid, known)
      await new Promise((resolve) => setTimeout(resolve, 100)) // the stopper is watching
      const logged = run.stderr.length
      run.child.kill('SIGUSR2')
      const stopped = await said
      if (!stopped.beforeExec) {
        // Too late, it ran (and was let go): it becomes the next generation.
        const line = await run.next()
        assert.ok(line.ready > 1, JSON.stringify(line))
        first.pid = line.pid
        known.push(line.pid)
        continue
      }
      // Its command name was still the monitor's; but exec closes the report pipe a moment
      // before it renames the process, so it may have been stopped just after: then the
      // monitor saw the start succeed, and the generation is not ready in time (a miss too).
      const outcome = /had not started \(exec\) within 1500 ms|was not ready in time/
      for (let i = 0; i < 50 && !outcome.test(run.stderr.slice(logged)); i++) await new Promise((resolve) => setTimeout(resolve, 100))
      if (/was not ready in time/.test(run.stderr.slice(logged))) {
        process.kill(stopped.pid, 'SIGCONT') // retired: it ends on its SIGTERM
        known.push(stopped.pid)
        continue
      }
      caught = true
      console.log(`stopped before exec at attempt ${attempt}`)
      assert.match(run.stderr.slice(logged), /generation \d+ had not started \(exec\) within 1500 ms .*: killed \(SIGKILL\); generation \d+ serves on/)
      await new Promise((resolve) => setTimeout(resolve, 100))
      assert.equal(alive(stopped.pid), false, 'the stopped start was left behind')
      assert.match(await fetchStream({ host: '127.0.0.1', port: 65 }), new RegExp(`^\\d+ ${first.pid}$`), 'the old generation serves on')
    }
    assert.ok(caught, 'the stopper never caught a start before its exec in 10 attempts')
    const ended = await within(stop(run), 15_000)
    report('hostile child attempts', { tried: 1, refused: ended !== 'timeout' ? 1 : 0, lost: ended !== 'timeout' ? 0 : 1 })
    assert.deepEqual(ended, { code: 0, signal: null })
  })
})

describe('the root side\'s own inputs (T3-9, T3-12)', () => {
  test('openPrivileged with a relative path: the hand-off holds it absolute, and an upgrade opens it again', async () => {
    const folder = tempDir('privsep-relative-')
    fs.writeFileSync(path.join(folder, 'key.pem'), 'relative key\n', { mode: 0o600 })
    try {
      const run = start('generations.mjs', { address: '127.0.0.1:66', files: ['key.pem'], spawn: { readyTimeoutMs: 5000 } }, { cwd: folder })
      runs.push(run)
      const first = await run.next()
      assert.deepEqual([first.ready, first.files], [1, ['relative key\n']], JSON.stringify(first))
      run.child.kill('SIGUSR2')
      const second = await run.next(8000).catch(() => ({ stderr: run.stderr }))
      assert.deepEqual([second.ready, second.files], [2, ['relative key\n']], JSON.stringify(second))
      assert.deepEqual(await stop(run), { code: 0, signal: null })
    } finally {
      fs.rmSync(folder, { recursive: true, force: true })
    }
  })

  test('a monitor executable that is not root\'s alone: ERR_PRIVSEP_UNSAFE_MONITOR, before root runs it', async () => {
    // A copy of the package (no platform package installed) whose local monitor is unsafe.
    const root = path.join(fixtures, '..', '..')
    const triple = fs.readdirSync(root).find((name) => /^privsep\.linux-.*\.node$/.test(name)).slice(8, -5)
    const pkg = path.join(dir, 'pkg')
    fs.mkdirSync(path.join(pkg, 'dist'), { recursive: true, mode: 0o755 })
    fs.copyFileSync(path.join(root, 'dist', 'index.js'), path.join(pkg, 'dist', 'index.js'))
    fs.copyFileSync(path.join(root, `privsep.${triple}.node`), path.join(pkg, `privsep.${triple}.node`))
    fs.writeFileSync(path.join(pkg, 'package.json'), '{"type":"module"}')
    const monitor = path.join(pkg, `privsep-monitor.${triple}`)
    fs.copyFileSync(path.join(root, `privsep-monitor.${triple}`), monitor)
    const script = 'import { Privsep } from "./dist/index.js"; new Privsep().forkExecUnprivileged({ user: "nobody" }).then(() => console.log("{}"), (err) => { console.log(JSON.stringify({ code: err.code, message: err.message })) })'
    const attempt = () => JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: pkg, encoding: 'utf8' }))
    const cases = [
      ['owned by nobody', () => fs.chownSync(monitor, nobody.uid, nobody.gid), /it is owned by uid 65534/],
      ['group-writable', () => fs.chmodSync(monitor, 0o775), /writable by group or others \(mode 775\)/],
      ['in a folder nobody owns', () => fs.chownSync(pkg, nobody.uid, nobody.gid), /pkg/]
    ]
    let refused = 0
    for (const [what, make, why] of cases) {
      fs.chownSync(pkg, 0, 0)
      fs.chownSync(monitor, 0, 0)
      fs.chmodSync(monitor, 0o755)
      make()
      const { code, message } = attempt()
      if (code === 'ERR_PRIVSEP_UNSAFE_MONITOR') refused++
      assert.equal(code, 'ERR_PRIVSEP_UNSAFE_MONITOR', `${what}: ${message}`)
      assert.ok(message.includes(monitor), message)
      assert.match(message, why, what)
    }
    report('path attacks', { tried: cases.length, refused, lost: cases.length - refused })
    fs.chownSync(pkg, 0, 0)
  })
})
