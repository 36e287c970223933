// privsep on Windows in one process, run by node.exe (under wine in `npm run test:windows`)
// against privsep as npm installed it: the addon comes from privsep-win32-x64-msvc; listen
// hands Node an address to bind (there is no fd to adopt); openPrivileged opens directly;
// forkExecUnprivileged refuses what Windows cannot honour, or runs in-process when told to.
// The restricted child itself: restricted.win.mjs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import dgram from 'node:dgram'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Privsep, listen, forkExecUnprivileged, restorePassedFiles, cleanupPassedFiles, setFilesImmediate, privsep } from 'privsep'

test('runs on Windows', () => {
  assert.equal(process.platform, 'win32')
})

/** A port nothing listens on now. */
async function freePort (host) {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, host, resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Serves `listener` with a server answering `answer`, connects to `target`, returns what came back. */
async function roundTrip (listener, target, answer) {
  const server = net.createServer((socket) => socket.end(answer))
  await new Promise((resolve, reject) => server.once('error', reject).listen(listener, resolve))
  try {
    return await new Promise((resolve, reject) => {
      let data = ''
      net.connect(target).on('data', (chunk) => { data += chunk }).on('end', () => resolve(data)).on('error', reject)
    })
  } finally {
    await new Promise((resolve) => server.close(resolve))
  }
}

test('the addon loads from the platform package privsep-win32-x64-msvc', () => {
  listen('tcp', '127.0.0.1:0') // loads the addon
  // The DLLs this process mapped: which .node file the loader really loaded.
  const addons = process.report.getReport().sharedObjects.filter((name) => name.toLowerCase().endsWith('.node'))
  assert.equal(addons.length, 1, addons.join(', '))
  assert.equal(path.basename(addons[0]), 'privsep.win32-x64-msvc.node')
  assert.equal(path.basename(path.dirname(addons[0])), 'privsep-win32-x64-msvc')
})

test('listen tcp returns a Listener that a net server binds and a client reaches', async () => {
  const port = await freePort('127.0.0.1')
  const listener = listen('tcp', `127.0.0.1:${port}`)
  assert.equal(listener.fd, undefined, 'no descriptor to adopt on Windows')
  assert.equal(listener.port, port)
  assert.equal(listener.host, '127.0.0.1')
  assert.equal(await roundTrip(listener, { port, host: '127.0.0.1' }, 'hello v4'), 'hello v4')
})

test('listen tcp6 binds IPv6 only', async () => {
  const port = await freePort('::1')
  const listener = new Privsep().listen('tcp6', `[::1]:${port}`)
  assert.equal(listener.host, '::1')
  assert.equal(listener.ipv6Only, true)
  assert.equal(await roundTrip(listener, { port, host: '::1' }, 'hello v6'), 'hello v6')
})

test('listen unix with a named pipe path serves over the pipe', async () => {
  const pipe = `\\\\.\\pipe\\privsep-test-${process.pid}, with space`
  const listener = new Privsep().listen('unix', pipe)
  assert.equal(listener.path, pipe)
  assert.equal(await roundTrip(listener, { path: pipe }, 'hello pipe'), 'hello pipe')
})

test('listen udp returns a Listener that dgram binds', async () => {
  const port = await freePort('127.0.0.1')
  const listener = new Privsep().listen('udp4', `127.0.0.1:${port}`)
  const socket = dgram.createSocket('udp4')
  await new Promise((resolve, reject) => socket.once('error', reject).bind(listener, resolve))
  try {
    assert.equal(socket.address().port, port)
    const got = new Promise((resolve) => socket.once('message', (message) => resolve(String(message))))
    const client = dgram.createSocket('udp4')
    client.send('ping', port, '127.0.0.1', () => client.close())
    assert.equal(await got, 'ping')
  } finally {
    socket.close()
  }
})

test('a port already taken fails when the server binds it, with EADDRINUSE', async () => {
  const taken = net.createServer()
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve))
  const { port } = taken.address()
  try {
    const listener = new Privsep().listen('tcp', `127.0.0.1:${port}`)
    const server = net.createServer()
    const err = await new Promise((resolve) => server.once('error', resolve).listen(listener))
    assert.equal(err.code, 'EADDRINUSE')
  } finally {
    taken.close()
  }
})

test('listen rejects a malformed address with ERR_PRIVSEP_INVALID_ARGUMENT', () => {
  assert.throws(() => new Privsep().listen('tcp', 'no-port-here'), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT', message: /no-port-here/ })
  assert.throws(() => new Privsep().listen('sctp', '127.0.0.1:1'), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT' })
})

test('openPrivileged with filesImmediate opens the file directly and the caller reads it', () => {
  const instance = new Privsep()
  instance.filesImmediate = true
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-win-'))
  try {
    const file = path.join(dir, 'key.pem')
    const secret = `key ${process.pid} ${Date.now()}`
    fs.writeFileSync(file, secret)
    const fd = instance.openPrivileged(file)
    assert.equal(typeof fd, 'number')
    assert.equal(fs.readFileSync(fd, 'utf8'), secret)
    fs.closeSync(fd)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('openPrivileged of a missing file fails with ENOENT naming the path', () => {
  const missing = path.join(os.tmpdir(), `privsep-missing-${process.pid}.pem`)
  assert.throws(() => new Privsep().openPrivileged(missing), (err) => err.code === 'ENOENT' && err.message.includes(missing))
})

test('restorePassedFiles and cleanupPassedFiles do nothing in a process privsep did not start', () => {
  restorePassedFiles()
  cleanupPassedFiles()
  assert.equal(typeof listen('tcp', '127.0.0.1:0').port, 'number')
})

test('forkExecUnprivileged as another account than this one fails with ERR_PRIVSEP_UNSUPPORTED and starts nothing', async () => {
  const before = processCount()
  assert.ok(before >= 1, 'tasklist sees this node.exe')
  await assert.rejects(new Privsep().forkExecUnprivileged({ user: 'nobody' }),
    { code: 'ERR_PRIVSEP_UNSUPPORTED', message: /Windows.*filesImmediate/s })
  await assert.rejects(forkExecUnprivileged({ user: 'nobody', exit: false }), { code: 'ERR_PRIVSEP_UNSUPPORTED' })
  assert.equal(processCount(), before, 'no process was started')
})

test('forkExecUnprivileged refuses options Windows cannot honour with ERR_PRIVSEP_UNSUPPORTED', async () => {
  const user = os.userInfo().username
  for (const option of [{ group: 'users' }, { umask: 0o27 }, { allow: { files: ['/x'] } }, { signals: ['SIGINT'] }, { upgradeSignal: 'SIGUSR2' }, { readyTimeoutMs: 1000 }]) {
    await assert.rejects(new Privsep().forkExecUnprivileged({ user, ...option }),
      { code: 'ERR_PRIVSEP_UNSUPPORTED', message: new RegExp(`options\\.${Object.keys(option)[0]}.*no meaning on Windows`) }, JSON.stringify(option))
  }
})

test('the sandbox option is accepted on Windows, which has none: require refuses with ERR_PRIVSEP_SANDBOX, and the state says not applicable', async () => {
  const user = os.userInfo().username
  await assert.rejects(new Privsep().forkExecUnprivileged({ user, sandbox: { require: true } }),
    { code: 'ERR_PRIVSEP_SANDBOX', message: /win32 has no Landlock or seccomp: the restricted token/ })
  assert.equal(new Privsep().sandbox.state, 'not applicable')
})

test('forkExecUnprivileged with filesImmediate resolves in this process', async () => {
  const instance = new Privsep()
  instance.filesImmediate = true
  assert.deepEqual(await instance.forkExecUnprivileged({ user: 'nobody' }), { code: null, signal: null, inProcess: true })
  setFilesImmediate(true)
  try {
    assert.equal(privsep.filesImmediate, true)
    assert.equal((await forkExecUnprivileged({ user: 'nobody' })).inProcess, true)
  } finally {
    setFilesImmediate(false)
  }
})

test('forkExecUnprivileged without a user fails with ERR_PRIVSEP_INVALID_ARGUMENT', async () => {
  await assert.rejects(new Privsep().forkExecUnprivileged({}), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT' })
})

test('without the platform package the loader names win32-x64-msvc and every path it tried', () => {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const modules = path.resolve(here, '..', 'node_modules')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-win-load-'))
  try {
    fs.cpSync(path.join(modules, 'privsep'), path.join(dir, 'node_modules', 'privsep'), { recursive: true })
    const probe = "try { require('privsep').listen('tcp', '127.0.0.1:0') } catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })) }"
    const result = spawnSync(process.execPath, ['-e', probe], { cwd: dir, encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } })
    assert.equal(result.status, 0, result.stderr)
    const { code, message } = JSON.parse(result.stdout)
    assert.equal(code, 'ERR_PRIVSEP_NATIVE_LOAD')
    assert.match(message, /for win32-x64-msvc/)
    assert.ok(message.includes(`${path.join(dir, 'node_modules', 'privsep', 'privsep.win32-x64-msvc.node')}: no such file (no local build)`), message)
    assert.ok(message.includes('privsep-win32-x64-msvc: package not installed'), message)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

/** How many node.exe processes run now (forkExecUnprivileged must start none). */
function processCount () {
  // wmic writes UTF-16; wine's tasklist prints nothing, so it is only the fallback.
  const wmic = spawnSync('wmic', ['process', 'get', 'Name'], { encoding: 'utf16le' })
  const listing = wmic.status === 0 && /node\.exe/i.test(wmic.stdout)
    ? wmic.stdout
    : spawnSync('tasklist', ['/FO', 'CSV', '/NH'], { encoding: 'utf8' }).stdout
  return listing.split('\n').filter((line) => /node\.exe/i.test(line)).length
}
