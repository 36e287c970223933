// systemd socket activation in: LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, with Debian's
// systemd-socket-activate as root (the monitor passes the activated socket on to the child)
// and as nobody (no root, no monitor), by address and by name; and every bad variable.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, afterEach, test } from 'node:test'
import { fetchStream, fixtures, nobody, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-activation-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))
const program = path.join(fixtures, 'activated.mjs')
const started = []
afterEach(() => { for (const child of started.splice(0)) child.kill('SIGKILL') })

/** Runs `argv`, collecting stdout's JSON lines; resolves the first one. */
function run (argv, options = {}) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  started.push(child)
  let out = ''
  let err = ''
  child.stderr.on('data', (c) => { err += c })
  const first = new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]))
    })
    child.on('exit', () => setTimeout(() => reject(new Error(`exited without a line; stderr:\n${err}`)), 100))
  })
  return { child, first, stderr: () => err }
}

// systemd-socket-activate starts the program on the first connection, which then waits in
// the socket's backlog until the program accepts it.
test('as root, an activated privileged port is handed to the monitor and served by nobody; the variables are gone', async () => {
  const { child } = run(['systemd-socket-activate', '-l', '127.0.0.1:93', process.execPath, program, JSON.stringify({ listen: [['tcp4', '127.0.0.1:93']] })])
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(await fetchStream({ host: '127.0.0.1', port: 93 }), 'uid 65534 127.0.0.1:93')
  child.kill('SIGTERM')
})

test('as root, a listener systemd did not pass is bound before the hand-off, and one line says which is which', async () => {
  const { child, stderr } = run(['systemd-socket-activate', '-l', '127.0.0.1:97', process.execPath, program,
    JSON.stringify({ listen: [['tcp4', '127.0.0.1:97'], ['tcp4', '127.0.0.1:98']] })])
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(await fetchStream({ host: '127.0.0.1', port: 97 }), 'uid 65534 127.0.0.1:97')
  assert.equal(await fetchStream({ host: '127.0.0.1', port: 98 }), 'uid 65534 127.0.0.1:98')
  assert.match(stderr(), /socket activation: 1 listener\(s\) from systemd \(tcp4 127\.0\.0\.1:97\), 1 bound here \(tcp4 127\.0\.0\.1:98\)/)
  child.kill('SIGTERM')
})

test('as nobody (User= in the unit), named sockets are found by name and address, without root or a monitor', async () => {
  const argv = ['systemd-socket-activate', '-l', '127.0.0.1:94', '--fdname=web', '-l', '127.0.0.1:95', '--fdname=admin',
    'setpriv', `--reuid=${nobody.uid}`, `--regid=${nobody.gid}`, '--clear-groups',
    process.execPath, program, JSON.stringify({ listen: [['tcp4', '127.0.0.1:95', 'admin'], ['tcp4', '127.0.0.1:94', 'web']] })]
  const { child, first } = run(argv)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const answer = fetchStream({ host: '127.0.0.1', port: 94 })
  assert.deepEqual(await first, { ready: true, env: [] })
  assert.equal(await answer, 'uid 65534 web')
  assert.equal(await fetchStream({ host: '127.0.0.1', port: 95 }), 'uid 65534 admin')
  child.kill('SIGTERM')
})

/** The program with LISTEN_* set as given (LISTEN_PID: its own pid unless `pid`) and fd 3. */
async function badly (env, fd3, listen = [['tcp4', '127.0.0.1:96']]) {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')
  const pid = env.LISTEN_PID ? '' : 'LISTEN_PID=$$'
  const argv = ['sh', '-c', `exec env ${pid} ${vars} "$@"`, 'sh', 'setpriv', `--reuid=${nobody.uid}`, `--regid=${nobody.gid}`, '--clear-groups',
    process.execPath, program, JSON.stringify({ listen })]
  return await run(argv, { stdio: ['ignore', 'pipe', 'pipe', fd3] }).first
}

test('bad activation variables: each its own code', async () => {
  const socket = net.createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => socket.on('listening', resolve))
  const file = fs.openSync(path.join(dir, 'not-a-socket'), 'w')
  try {
    const fd = socket._handle.fd
    assert.equal((await badly({ LISTEN_PID: 1, LISTEN_FDS: 1 }, fd)).code, 'ERR_PRIVSEP_ACTIVATION_PID')
    assert.equal((await badly({ LISTEN_FDS: 2, LISTEN_FDNAMES: 'web' }, fd)).code, 'ERR_PRIVSEP_ACTIVATION_MALFORMED')
    assert.equal((await badly({ LISTEN_FDS: 'one' }, fd)).code, 'ERR_PRIVSEP_ACTIVATION_MALFORMED')
    assert.equal((await badly({ LISTEN_FDS: 1 }, file)).code, 'ERR_PRIVSEP_NOT_SOCKET')
    const other = await badly({ LISTEN_FDS: 1, LISTEN_FDNAMES: 'web' }, fd, [['tcp4', '127.0.0.1:96', 'web']])
    assert.equal(other.code, 'ERR_PRIVSEP_NOT_ACTIVATED', 'asked for by name, at another address')
    assert.match(other.message, new RegExp(`passed: web \\(fd 3, stream 127\\.0\\.0\\.1:${socket.address().port}\\)`))
    const named = await badly({ LISTEN_FDS: 1, LISTEN_FDNAMES: 'web' }, fd, [['tcp4', `127.0.0.1:${socket.address().port}`, 'admin']])
    assert.equal(named.code, 'ERR_PRIVSEP_NOT_ACTIVATED', 'the right address under another name is not it')
  } finally {
    socket.close()
    fs.closeSync(file)
  }
})
