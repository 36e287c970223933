// The child's kernel sandbox (issue 21), for real: a root program drops to nobody and its child
// probes what it can reach (fixtures/sandbox-probe.mjs), with the sandbox and without it (the
// control, which shows each probe is real). The attacks by system call come from a C program
// the child runs (fixtures/sandbox-attack.c) against an unrelated process of nobody's that this
// test starts. A kernel that lacks part of the sandbox is made with a seccomp wrapper
// (fixtures/no-sandbox.c), the fake-capset technique.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fixtures, nobody, readyLine, report, runToEnd, start, tempDir } from './helpers.mjs'

const linux = process.platform === 'linux'
const isRoot = process.getuid?.() === 0

// A kernel without Landlock ABI 6 fails the first test's "full": that is the point.
describe('the child starts in a kernel sandbox', { skip: (!linux && 'Linux only') || (!isRoot && 'needs root') }, () => {
  const dir = tempDir('privsep-sandbox-')
  const bin = path.join(dir, 'bin')
  const attack = path.join(bin, 'sandbox-attack')
  const noSandbox = path.join(dir, 'no-sandbox')
  const outside = path.join(dir, 'outside')
  const writable = path.join(dir, 'writable')
  const beside = path.join(dir, 'beside')
  const abstract = `privsep-sandbox-${process.pid}`
  let victim, abstractServer, tcpServer, base

  before(async () => {
    fs.mkdirSync(bin, { mode: 0o755 })
    execFileSync('cc', ['-o', attack, path.join(fixtures, 'sandbox-attack.c')])
    execFileSync('cc', ['-o', noSandbox, path.join(fixtures, 'no-sandbox.c')])
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' })
    fs.chmodSync(path.join(dir, 'key.pem'), 0o600)
    fs.mkdirSync(outside, { mode: 0o755 })
    fs.writeFileSync(path.join(outside, 'world-readable'), 'anyone may read this\n', { mode: 0o644 })
    for (const folder of [writable, beside]) {
      fs.mkdirSync(folder, { mode: 0o755 })
      fs.chownSync(folder, nobody.uid, nobody.gid)
    }
    // An unrelated process of the child's user, dumpable: what another service of nobody's is.
    victim = spawn('sleep', ['600'], { uid: nobody.uid, gid: nobody.gid, stdio: 'ignore' })
    abstractServer = net.createServer((socket) => socket.end())
    await new Promise((resolve) => abstractServer.listen({ path: `\0${abstract}` }, resolve))
    tcpServer = net.createServer((socket) => socket.end())
    await new Promise((resolve) => tcpServer.listen(0, '127.0.0.1', resolve))
    base = {
      key: path.join(dir, 'key.pem'),
      cert: path.join(dir, 'cert.pem'),
      outsideFile: path.join(outside, 'world-readable'),
      victim: victim.pid,
      abstract,
      attack,
      connectPort: tcpServer.address().port,
      bindPort: 40_000 + (process.pid % 10_000),
      writable,
      beside
    }
  })
  after(() => {
    victim?.kill('SIGKILL')
    abstractServer?.close()
    tcpServer?.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  let port = 700
  /** Runs the probe with `spawn` (forkExecUnprivileged's options); its one line and stderr. */
  async function probe (spawnOptions, options = {}) {
    const config = { ...base, port: port++, spawn: spawnOptions }
    const run = await runToEnd('sandbox-probe.mjs', config, { env: { ...process.env, TZ: 'Europe/Paris' }, ...options })
    const line = run.lines.find((l) => l.sandbox !== undefined)
    return { ...run, line }
  }
  const refusedByTheSandbox = {
    readSync: 'EACCES',
    readThreadpool: 'EACCES',
    listRoot: 'EACCES',
    writeTmp: 'EACCES',
    spawnTrue: 'EACCES',
    signal: 'EPERM',
    bindTcp: 'EACCES',
    abstractUnix: 'EPERM'
  }
  const stillWorking = {
    tls: 'tls ok',
    lazyImport: 'lazy ok',
    promClient: 'ok',
    connectTcp: 'ok',
    dnsLookup: '127.0.0.1',
    timeZone: '9',
    dateString: 'Thu Jan 01 2026 13:00:00 GMT+0100 (Central European Standard Time)'
  }

  test('each probe is refused inside the default profile and allowed without the sandbox; what the program needs still works', async () => {
    const boxed = await probe({ sandbox: { execute: [bin] } })
    assert.ok(boxed.line, boxed.stderr)
    assert.deepEqual(boxed.line.sandbox, { state: 'full', landlock: true, seccomp: true, abi: boxed.line.sandbox.abi, required: false, missing: [] })
    assert.ok(boxed.line.sandbox.abi >= 6, `Landlock ABI ${boxed.line.sandbox.abi}`)
    const { attack: attacked, ...refused } = boxed.line.refused
    const attacks = JSON.parse(attacked)
    const outcomes = [...Object.values(refused), attacks.getfd, attacks.seize, attacks.ioUring]
    const held = outcomes.filter((outcome) => outcome === 'EACCES' || outcome === 'EPERM').length
    report('sandboxed child attempts', { tried: outcomes.length, refused: held, lost: outcomes.length - held })
    assert.deepEqual(refused, refusedByTheSandbox)
    assert.deepEqual(attacks, { getfd: 'EPERM', seize: 'EPERM', ioUring: 'EPERM', foreignArch: process.arch === 'x64' ? 'EPERM' : 'none' })
    const { writeAllowed, writeBeside, ...works } = boxed.line.works
    assert.deepEqual(works, stillWorking)
    assert.match(boxed.stderr, /privsep: sandbox: full \(Landlock ABI \d+, seccomp deny-list\)/)

    // A state in root's environment is not the child's: only the fork says what took hold.
    const control = await probe({ sandbox: false }, { env: { ...process.env, TZ: 'Europe/Paris', PRIVSEP_SANDBOX: 'v1 landlock:y seccomp:y abi:7 required:0 missing:' } })
    assert.ok(control.line, control.stderr)
    assert.equal(control.line.sandbox.state, 'off')
    const { attack: free, ...allowed } = control.line.refused
    assert.deepEqual(allowed, Object.fromEntries(Object.keys(refusedByTheSandbox).map((name) => [name, 'ok'])))
    assert.deepEqual(JSON.parse(free), { getfd: 'ok', seize: 'ok', ioUring: 'ok', foreignArch: process.arch === 'x64' ? 'ok' : 'none' })
    const { writeAllowed: w1, writeBeside: w2, ...controlWorks } = control.line.works
    assert.deepEqual(controlWorks, stillWorking)
    assert.match(control.stderr, /privsep: sandbox: off/)
  })

  test('a program that declares a writable folder writes there and nowhere else', async () => {
    fs.rmSync(path.join(beside, 'beside'), { force: true }) // the control wrote it
    const { line, stderr } = await probe({ sandbox: { write: [writable] } })
    assert.ok(line, stderr)
    report('sandboxed child attempts', { tried: 1, refused: line.works.writeBeside === 'EACCES' ? 1 : 0, lost: line.works.writeBeside === 'EACCES' ? 0 : 1 })
    assert.equal(line.works.writeAllowed, 'x')
    assert.equal(line.works.writeBeside, 'EACCES')
    assert.equal(line.refused.writeTmp, 'EACCES')
    assert.equal(fs.readFileSync(path.join(writable, 'inside'), 'utf8'), 'x')
    assert.ok(!fs.existsSync(path.join(beside, 'beside')))
  })

  test('widening: io_uring allowed, and connect limited to the listed ports', async () => {
    const { line, stderr } = await probe({ sandbox: { execute: [bin], ioUring: true, connect: [port] } })
    assert.ok(line, stderr)
    const attacked = JSON.parse(line.refused.attack)
    assert.equal(attacked.ioUring, 'ok')
    assert.equal(attacked.seize, 'EPERM')
    assert.equal(line.works.tls, 'tls ok', 'the listed port connects')
    assert.equal(line.works.connectTcp, 'EACCES', 'a port not listed does not')
  })

  test('a kernel without Landlock, or without seccomp, gives a partial or no sandbox, said at start and never "full"', async () => {
    const noLandlock = await probe({ sandbox: { execute: [bin] } }, { prefix: [noSandbox, 'landlock'] })
    assert.ok(noLandlock.line, noLandlock.stderr)
    assert.deepEqual(noLandlock.line.sandbox, { state: 'partial', landlock: false, seccomp: true, abi: 0, required: false, missing: ['landlock'] })
    assert.equal(noLandlock.line.refused.readSync, 'ok', 'no Landlock: the file is readable, and the state says so')
    // Landlock alone refuses ptrace and pidfd_getfd of a process outside its domain: here,
    // without it, what refuses them is the seccomp deny-list.
    assert.deepEqual(JSON.parse(noLandlock.line.refused.attack), { getfd: 'EPERM', seize: 'EPERM', ioUring: 'EPERM', foreignArch: process.arch === 'x64' ? 'EPERM' : 'none' }, 'seccomp still refuses')
    assert.match(noLandlock.stderr, /privsep: sandbox: partial; not enforced: landlock\n/)

    // qemu-user's answer to PR_SET_SECCOMP (EINVAL), with Landlock there.
    const noSeccomp = await probe({ sandbox: { execute: [bin] } }, { prefix: [noSandbox, 'seccomp'] })
    assert.ok(noSeccomp.line, noSeccomp.stderr)
    assert.deepEqual(noSeccomp.line.sandbox, { state: 'partial', landlock: true, seccomp: false, abi: noSeccomp.line.sandbox.abi, required: false, missing: ['seccomp'] })
    assert.equal(noSeccomp.line.refused.readSync, 'EACCES')
    assert.match(noSeccomp.stderr, /privsep: sandbox: partial \(Landlock ABI \d+\); not enforced: seccomp\n/)

    const neither = await probe({}, { prefix: [noSandbox, 'both'] })
    assert.ok(neither.line, neither.stderr)
    assert.deepEqual(neither.line.sandbox, { state: 'none', landlock: false, seccomp: false, abi: 0, required: false, missing: ['landlock', 'seccomp'] })
    assert.match(neither.stderr, /privsep: sandbox: none; not enforced: landlock, seccomp\n/)
  })

  test('sandbox.require: the start is refused (ERR_PRIVSEP_SANDBOX) unless all of it is enforced, before exec', async () => {
    const required = await probe({ sandbox: { require: true } })
    assert.ok(required.line, required.stderr)
    assert.equal(required.line.sandbox.state, 'full')
    assert.equal(required.line.sandbox.required, true)

    // Landlock missing: refused before the fork, with the ABI and what is missing named.
    const noLandlock = await probe({ sandbox: { require: true } }, { prefix: [noSandbox, 'landlock'] })
    assert.equal(noLandlock.line, undefined, 'nothing ran as the child')
    assert.equal(noLandlock.code, 126)
    assert.match(noLandlock.stderr, /privsep-monitor: ERR_PRIVSEP_SANDBOX: the sandbox is required \(sandbox.require\) but this kernel \(or an emulator such as qemu-user\) lacks part of it: Landlock ABI 0 is missing landlock/)

    // seccomp refused in the fork: the child reports the stage and is stopped before exec.
    const noSeccomp = await probe({ sandbox: { require: true } }, { prefix: [noSandbox, 'seccomp'] })
    assert.equal(noSeccomp.line, undefined, 'nothing ran as the child')
    assert.equal(noSeccomp.code, 126)
    assert.match(noSeccomp.stderr, /privsep-monitor: ERR_PRIVSEP_SANDBOX: .*could not enter it \(seccomp: Invalid argument/)
  })

  test('every generation an upgrade starts is in the same sandbox', async () => {
    const run = start('generations.mjs', { address: '127.0.0.1:703', outside: base.outsideFile, spawn: { readyTimeoutMs: 5000 } })
    try {
      const first = await readyLine(run)
      run.child.kill('SIGUSR2')
      const second = await readyLine(run)
      assert.deepEqual([first.ready, first.sandbox, first.outside], [1, 'full', 'EACCES'], JSON.stringify(first))
      assert.deepEqual([second.ready, second.sandbox, second.outside], [2, 'full', 'EACCES'], JSON.stringify(second))
    } finally {
      run.child.kill('SIGTERM')
      await run.exited
    }
    const control = start('generations.mjs', { address: '127.0.0.1:703', outside: base.outsideFile, spawn: { sandbox: false } })
    try {
      const line = await readyLine(control)
      assert.deepEqual([line.sandbox, line.outside], ['off', 'ok'])
    } finally {
      control.child.kill('SIGTERM')
      await control.exited
    }
  })
})
