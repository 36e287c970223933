// systemd's file descriptor store (issue 23), against fixtures/fake-systemd.py, which plays
// systemd's side (the notification socket, the store given back in LISTEN_FDS): each listener
// goes to the store right after it is bound, by the Node root process or, for one bound for the
// child, by the monitor; a full store is said; a stored listener comes back by its name and is
// served without binding again; one the program no longer declares is removed. And what the
// child does when the monitor dies: it drains what it has in flight, then exits.
// __test__/systemd.test.mjs runs the same under the real systemd.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, afterEach, test } from 'node:test'
import { alive, fixtures, freePorts, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-fdstore-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))
const started = []
/** Monitors started, ended after each test (a failed test never sent its SIGTERM); the child then drains and exits. */
const monitors = []
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const pid of monitors.splice(0)) {
    try { if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'privsep-monitor') process.kill(pid, 'SIGKILL') } catch {}
  }
})
// Ports base + 1 .. base + 12.
const [base] = await freePorts(13, 1100, 3200)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs fixtures/stored.mjs with `config` under fixtures/fake-systemd.py (store size `limit`,
 * `stored` given back); resolves once the child reports ready (or the program its error).
 */
async function run (config, { limit, stored = [] }) {
  const out = path.join(dir, `notify-${crypto.randomUUID()}.jsonl`)
  const notify = path.join(dir, `notify-${crypto.randomUUID()}`)
  const argv = [process.execPath, path.join(fixtures, 'stored.mjs'), JSON.stringify(config)]
  const child = spawn('python3', [path.join(fixtures, 'fake-systemd.py'), JSON.stringify({ notify, out, limit, stored, argv })],
    { stdio: ['ignore', 'pipe', 'pipe'] })
  started.push(child)
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (c) => { stderr += c })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const first = await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      stdout += c
      // The lifecycle logs to stdout too: the fixture's own line says ready, or the error.
      const line = stdout.split('\n').slice(0, -1).map((l) => JSON.parse(l)).find((l) => l.ready !== undefined || l.code !== undefined)
      if (line !== undefined) resolve(line)
    })
    child.on('exit', () => setTimeout(() => reject(new Error(`exited without a line; stderr:\n${stderr}`)), 100))
  })
  const messages = () => fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []
  // The monitor is the child's parent (the fake systemd's own child, exec'd in place).
  const monitor = first.pid === undefined ? undefined : Number(fs.readFileSync(`/proc/${first.pid}/stat`, 'utf8').split(') ')[1].split(' ')[1])
  if (monitor !== undefined) monitors.push(monitor)
  return { child, first, messages, stderr: () => stderr, exited, monitor }
}

/** GET / on `port`: the answer's text, or the error's code. */
function get (port, timeout = 5000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, agent: false, timeout }, (res) => {
      let body = ''
      res.on('data', (c) => { body += c }).on('end', () => resolve(body.trim())).on('error', (err) => resolve(err.code))
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })))
    req.on('error', (err) => resolve(err.code))
  })
}

const stores = (port) => ({ state: `FDSTORE=1\nFDNAME=tcp4 127.0.0.1%3A${port}`, fds: [{ address: `127.0.0.1:${port}`, listening: true }] })

test('each listener goes to the store once bound, under its name: the two the root process bound, and the one the monitor bound for the child', async () => {
  const [a, b, c] = [base, base + 1, base + 2]
  const { first, messages, monitor } = await run({ listen: [['tcp4', `127.0.0.1:${a}`], ['tcp4', `127.0.0.1:${b}`]], allow: [['tcp4', `127.0.0.1:${c}`]], request: [['tcp4', `127.0.0.1:${c}`]] }, { limit: 8 })
  assert.equal(first.ready, true)
  for (const port of [a, b, c]) assert.match(await get(port), new RegExp(`^uid 65534 pid ${first.pid} 127\\.0\\.0\\.1:${port}$`))
  await sleep(200)
  const stored = messages().filter((m) => m.state.startsWith('FDSTORE='))
  assert.deepEqual(stored, [stores(a), stores(b), stores(c)])
  process.kill(monitor, 'SIGTERM')
})

test('a full store is said (ERR_PRIVSEP_FDSTORE_FULL), by the root process and by the monitor, and what fits is stored', async () => {
  const [a, b, c] = [base + 3, base + 4, base + 5]
  const { first, messages, stderr, monitor } = await run({ listen: [['tcp4', `127.0.0.1:${a}`], ['tcp4', `127.0.0.1:${b}`]], allow: [['tcp4', `127.0.0.1:${c}`]], request: [['tcp4', `127.0.0.1:${c}`]] }, { limit: 1 })
  assert.equal(first.ready, true)
  await sleep(200)
  assert.deepEqual(messages().filter((m) => m.state.startsWith('FDSTORE=')), [stores(a)])
  assert.match(stderr(), new RegExp(`ERR_PRIVSEP_FDSTORE_FULL.*listen\\(tcp4 127\\.0\\.0\\.1:${b}\\) is not kept in systemd's file descriptor store: the store holds 1 already`))
  assert.match(stderr(), new RegExp(`privsep-monitor: ERR_PRIVSEP_FDSTORE_FULL: tcp4 127\\.0\\.0\\.1:${c} is not kept in systemd's file descriptor store`))
  process.kill(monitor, 'SIGTERM')
})

test('the store given back: a listener is taken by its name (not bound again) and served; one no longer declared, or not the socket its name says, is removed (FDSTOREREMOVE=1)', async () => {
  const [a, b, stale, wrong] = [base + 6, base + 7, base + 8, base + 9]
  const stored = [[`tcp4 127.0.0.1%3A${a}`, '127.0.0.1', a], [`tcp4 127.0.0.1%3A${stale}`, '127.0.0.1', stale], [`tcp4 127.0.0.1%3A${b}`, '127.0.0.1', wrong]]
  const { first, messages, stderr, monitor } = await run({ listen: [['tcp4', `127.0.0.1:${a}`], ['tcp4', `127.0.0.1:${b}`]] }, { limit: 8, stored })
  // The fake systemd holds `a` bound: binding it again would have failed (EADDRINUSE).
  assert.equal(first.ready, true, stderr())
  assert.match(await get(a), new RegExp(`^uid 65534 pid ${first.pid} 127\\.0\\.0\\.1:${a}$`))
  assert.match(await get(b), new RegExp(`^uid 65534 pid ${first.pid} 127\\.0\\.0\\.1:${b}$`))
  await sleep(200)
  const states = messages().map((m) => m.state)
  assert.ok(states.includes(`FDSTOREREMOVE=1\nFDNAME=tcp4 127.0.0.1%3A${stale}`), states.join(' | '))
  assert.ok(states.includes(`FDSTOREREMOVE=1\nFDNAME=tcp4 127.0.0.1%3A${b}`), 'the wrong socket under b\'s name is removed')
  // Taken by its name at listen(): removed first, then b bound afresh is stored, and stays.
  assert.deepEqual(states.filter((s) => s.endsWith(`%3A${b}`)), [`FDSTOREREMOVE=1\nFDNAME=tcp4 127.0.0.1%3A${b}`, stores(b).state])
  assert.ok(!states.includes(stores(a).state), 'a is in the store already: not sent again')
  // Closed here as systemd's store would close it: the stale port no longer accepts once the fake systemd lets go.
  process.kill(monitor, 'SIGTERM')
})

test('when the monitor dies (kill -9), the child finishes the request it has in flight within its grace, then exits', async () => {
  const port = base + 10
  const { first, monitor } = await run({ listen: [['tcp4', `127.0.0.1:${port}`]], delayMs: 700, graceMs: 3000 }, { limit: 8 })
  assert.equal(first.ready, true)
  const answer = get(port)
  await sleep(200)
  process.kill(monitor, 'SIGKILL')
  assert.match(await answer, new RegExp(`^uid 65534 pid ${first.pid} 127\\.0\\.0\\.1:${port}$`), 'the request in flight is answered')
  const deadline = Date.now() + 5000
  while (alive(first.pid) && Date.now() < deadline) await sleep(50)
  assert.equal(alive(first.pid), false, 'the child exits after its drain')
})

test('a listener the monitor bound for the child comes back from the store to the monitor, which gives it to the child that asks (not bound again)', async () => {
  const [a, c] = [base + 11, base + 12]
  const stored = [[`tcp4 127.0.0.1%3A${c}`, '127.0.0.1', c]]
  const { first, messages, stderr, monitor } = await run({ listen: [['tcp4', `127.0.0.1:${a}`]], allow: [['tcp4', `127.0.0.1:${c}`]], request: [['tcp4', `127.0.0.1:${c}`]] }, { limit: 8, stored })
  // The fake systemd holds `c` bound: had the monitor bound it again, the request would have failed (EADDRINUSE).
  assert.equal(first.ready, true, stderr())
  assert.match(await get(c), new RegExp(`^uid 65534 pid ${first.pid} 127\\.0\\.0\\.1:${c}$`))
  await sleep(200)
  const states = messages().map((m) => m.state)
  assert.ok(!states.some((s) => s.endsWith(`%3A${c}`)), `c is neither removed nor stored again: ${states.join(' | ')}`)
  process.kill(monitor, 'SIGTERM')
})

test('a stored unix socket is taken while its file is there, and bound afresh (removed from the store, stored again) when its file is gone', async () => {
  const unixGet = (socketPath) => new Promise((resolve) => {
    http.get({ socketPath, path: '/', agent: false, timeout: 5000 }, (res) => {
      let body = ''
      res.on('data', (c) => { body += c }).on('end', () => resolve(body.trim()))
    }).on('error', (err) => resolve(err.code))
  })
  for (const gone of [false, true]) {
    const socketPath = path.join(dir, `stored-${gone ? 'gone' : 'there'}.sock`)
    fs.rmSync(socketPath, { force: true })
    const name = `unix ${socketPath}`
    const { first, messages, stderr, monitor } = await run({ listen: [['unix', socketPath]] }, { limit: 8, stored: [[name, 'unix', { path: socketPath, gone }]] })
    assert.equal(first.ready, true, stderr())
    assert.match(await unixGet(socketPath), new RegExp(`^uid 65534 pid ${first.pid} ${socketPath.replace(/[.]/g, '\\.')}$`))
    await sleep(200)
    const states = messages().map((m) => m.state).filter((s) => s.endsWith(name))
    assert.deepEqual(states, gone ? [`FDSTOREREMOVE=1\nFDNAME=${name}`, `FDSTORE=1\nFDNAME=${name}`] : [], `file ${gone ? 'gone' : 'there'}`)
    process.kill(monitor, 'SIGTERM')
    await sleep(300)
  }
})
