// Zero-downtime upgrades: SIGUSR2 to the root process (the monitor) starts a new generation of
// the program as it is on disk now, with the same listeners; once it calls ready() the old one
// drains and goes. Under a steady loopback load of keep-alive and new connections, through
// three upgrades with the program changed between them; and a new version that crashes at
// start, or never becomes ready, leaves the old one serving.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, afterEach, test } from 'node:test'
import { alive, fixtures, httpLoad, readyLine, start, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-upgrade-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))
fs.mkdirSync(path.join(dir, 'node_modules'))
fs.symlinkSync(path.join(fixtures, '..', '..'), path.join(dir, 'node_modules', 'privsep'), 'dir')
const program = path.join(dir, 'upgrade.mjs')
const write = (version) => fs.writeFileSync(program, fs.readFileSync(path.join(fixtures, 'upgrade.mjs'), 'utf8').replace("const version = 'v1'", `const version = '${version}'`))
const runs = []
afterEach(() => { for (const run of runs.splice(0)) run.child.kill('SIGKILL') })

function begin (config) {
  const run = start(path.relative(fixtures, program), config)
  runs.push(run)
  return run
}

/** 8 clients; a good answer is `version generation pid`, counted by `version generation`. */
const load = (port) => httpLoad(port, {
  clients: 8,
  answer: (status, body) => status === 200 && /^v\d \d+ \d+\n$/.test(body) ? body.split(' ').slice(0, 2).join(' ') : undefined
})

test('three upgrades under load, the program changed between them: no request fails, each generation serves, old ones exit', async () => {
  write('v1')
  const run = begin({ address: '127.0.0.1:84' })
  const first = await readyLine(run)
  const traffic = load(84)
  const pids = [first.pid]
  for (const version of ['v2', 'v3', 'v4']) {
    await new Promise((resolve) => setTimeout(resolve, 300))
    write(version)
    run.child.kill('SIGUSR2')
    const line = await readyLine(run)
    assert.equal(line.version, version)
    pids.push(line.pid)
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  await traffic.stop()
  const { stats } = traffic
  console.log(`upgrade load: ${stats.sent} sent, ${stats.ok} ok, ${stats.failed.length} failed; answers ${JSON.stringify([...stats.answers])}`)
  assert.deepEqual(stats.failed, [], `every request answered whole with 200; warnings: ${JSON.stringify(run.all.filter((l) => l.level >= 40))}`)
  assert.equal(stats.ok, stats.sent)
  for (const [version, generation] of [['v1', 1], ['v2', 2], ['v3', 3], ['v4', 4]]) {
    assert.ok(stats.answers.get(`${version} ${generation}`) > 0, `generation ${generation} (${version}) served requests`)
  }
  for (const pid of pids.slice(0, -1)) assert.equal(alive(pid), false, `old child ${pid} exited after draining`)
  assert.ok(alive(pids.at(-1)))
  run.child.kill('SIGTERM')
  assert.deepEqual(await run.exited, { code: 0, signal: null })
})

test('a new version that crashes at start, or never becomes ready, leaves the old one serving with nothing lost', async () => {
  write('v1')
  const run = begin({ address: '127.0.0.1:85', readyTimeoutMs: 1500 })
  const first = await readyLine(run)
  const traffic = load(85)
  for (const [flag, reason] of [['crash', /ended before it was ready/], ['never-ready', /was not ready in time/]]) {
    write('v9')
    fs.writeFileSync(path.join(dir, flag), '')
    run.child.kill('SIGUSR2')
    for (let i = 0; i < 50 && !reason.test(run.stderr); i++) await new Promise((resolve) => setTimeout(resolve, 100))
    assert.match(run.stderr, reason)
    fs.rmSync(path.join(dir, flag))
  }
  const before = traffic.stats.answers.get('v1 1')
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.ok(traffic.stats.answers.get('v1 1') > before, 'the old generation serves on')
  await traffic.stop()
  assert.deepEqual(traffic.stats.failed, [])
  assert.ok(alive(first.pid))
  run.child.kill('SIGTERM')
  assert.deepEqual(await run.exited, { code: 0, signal: null })
})

/** `privsep reload ARGS...`: { code, stdout, stderr }. */
const reload = (...args) => new Promise((resolve) => {
  execFile(process.execPath, [path.join(fixtures, '..', '..', 'dist', 'cli.js'), 'reload', ...args], (err, stdout, stderr) => {
    resolve({ code: err === null ? 0 : err.code, stdout, stderr })
  })
})
const get = (port) => new Promise((resolve, reject) => {
  http.get({ port, host: '127.0.0.1', agent: false }, (res) => {
    let body = ''
    res.on('data', (chunk) => { body += chunk }).on('end', () => resolve(body))
  }).on('error', reject)
})

test('privsep reload returns once the new generation serves, and fails with the reason when the upgrade fails or is refused', async () => {
  write('v1')
  const pidFile = path.join(dir, 'program.pid')
  const marks = path.join(dir, 'marks') // each generation marks itself here as it calls ready()
  fs.mkdirSync(marks, { mode: 0o777 })
  fs.chmodSync(marks, 0o777)
  const run = begin({ address: '127.0.0.1:86', readyTimeoutMs: 1500, pidFile, marks })
  await readyLine(run)
  const monitor = String(run.child.pid)
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${monitor}\n`, 'options.pidFile holds the pid to signal')
  assert.match(run.stderr, new RegExp(`privsep: the pid to signal is ${monitor} \\(this process, which becomes privsep-monitor\\): SIGTERM stops, SIGUSR2 upgrades`))
  for (const [version, generation, how] of [['v2', 2, ['--pid', monitor]], ['v3', 3, ['--pid-file', pidFile]]]) {
    write(version)
    const done = await reload(...how)
    assert.equal(done.code, 0, done.stderr)
    assert.equal(done.stdout, `privsep reload: generation ${generation} of privsep-monitor ${monitor} serves\n`)
    // Synchronous: when reload returns, the new generation has called ready(); new connections
    // reach it (the old one may still take one or two until it has handled its SIGTERM).
    assert.ok(fs.existsSync(path.join(marks, `ready-${generation}`)), `reload returned before generation ${generation} was ready`)
    let answer
    for (let i = 0; i < 100 && !(answer = await get(86)).startsWith(`${version} ${generation} `); i++) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.match(answer, new RegExp(`^${version} ${generation} `))
  }
  for (const [flag, generation] of [['crash', 4], ['never-ready', 5]]) {
    write('v9')
    fs.writeFileSync(path.join(dir, flag), '')
    const failed = await reload('--pid', monitor)
    fs.rmSync(path.join(dir, flag))
    assert.equal(failed.code, 1, `generation ${generation}: ${failed.stdout}`)
    assert.match(failed.stderr, /the upgrade failed: .* the one before serves on/)
    assert.match(await get(86), /^v3 3 /, 'the old generation serves on')
  }
  // A pid that is not a privsep monitor gets no signal (SIGUSR2 would end it).
  const wrong = await reload('--pid', String(process.pid))
  assert.equal(wrong.code, 1)
  // Named by its comm: node, or MainThread from Node 24 on.
  assert.match(wrong.stderr, new RegExp(`process ${process.pid} is \\S+, not privsep-monitor`))
  assert.equal((await reload('--pid', 'x1')).code, 2)
  run.child.kill('SIGTERM')
  assert.deepEqual(await run.exited, { code: 0, signal: null })
})
