// systemd notifications out, without libsystemd: a unix datagram socket made here plays
// systemd's NOTIFY_SOCKET and records each message with its sender's pid (SCM_CREDENTIALS), as
// systemd checks it (NotifyAccess=main: only the main process, which is the monitor).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { after, test } from 'node:test'
import { fixtures, nobody, start, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-notify-')
/** The program's `ready` report (pino's log lines come first). */
async function readyLine (run) {
  for (;;) {
    const line = await run.next()
    if (line.ready) return line
  }
}
after(() => fs.rmSync(dir, { recursive: true, force: true }))

/** A fake systemd listening on `name` in `dir`; `next(match)` resolves the next message that matches. */
async function fakeSystemd (name) {
  const socket = path.join(dir, name)
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
  const child = spawn(python, [path.join(fixtures, 'notify-listen.py'), socket], { stdio: ['ignore', 'pipe', 'inherit'] })
  const seen = []
  const waiters = []
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const message = JSON.parse(line)
    seen.push(message)
    for (const w of [...waiters]) if (w.match(message)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(message) }
  })
  const next = (match) => {
    const found = seen.find(match)
    return found ? Promise.resolve(found) : new Promise((resolve) => waiters.push({ match, resolve }))
  }
  await next((m) => m.listening)
  return { socket, seen, next, stop: () => child.kill() }
}

test('READY=1, STATUS= and STOPPING=1 come from the monitor, the main process; the child never sees NOTIFY_SOCKET', async () => {
  const systemd = await fakeSystemd('notify.sock')
  const run = start('notify.mjs', { address: '127.0.0.1:92' }, { env: { ...process.env, NOTIFY_SOCKET: systemd.socket } })
  try {
    const ready = await readyLine(run)
    assert.deepEqual(ready.env, [], 'the child has no NOTIFY_SOCKET: only the monitor speaks to systemd')
    const main = run.child.pid
    assert.deepEqual(await systemd.next((m) => m.state === 'READY=1'), { state: 'READY=1', pid: main, uid: 0 })
    const status = await systemd.next((m) => m.state?.startsWith('STATUS='))
    assert.deepEqual(status, { state: `STATUS=serving 127.0.0.1:92 as uid ${nobody.uid}`, pid: main, uid: 0 })
    run.child.kill('SIGTERM')
    assert.deepEqual(await systemd.next((m) => m.state === 'STOPPING=1'), { state: 'STOPPING=1', pid: main, uid: 0 })
    assert.deepEqual(await run.exited, { code: 0, signal: null })
    assert.ok(systemd.seen.every((m) => m.listening || m.pid === main), `every message from the main process: ${JSON.stringify(systemd.seen)}`)
  } finally {
    run.child.kill('SIGKILL')
    systemd.stop()
  }
})

test('without a monitor (no root), the process notifies systemd itself', async () => {
  const systemd = await fakeSystemd('plain.sock')
  const run = start('notify.mjs', { address: '127.0.0.1:0', plain: true },
    { uid: nobody.uid, gid: nobody.gid, env: { ...process.env, NOTIFY_SOCKET: systemd.socket } })
  try {
    const ready = await readyLine(run)
    assert.deepEqual(await systemd.next((m) => m.state === 'READY=1'), { state: 'READY=1', pid: ready.pid, uid: nobody.uid })
    run.child.kill('SIGTERM')
    await systemd.next((m) => m.state === 'STOPPING=1')
    await run.exited
  } finally {
    run.child.kill('SIGKILL')
    systemd.stop()
  }
})

test('no NOTIFY_SOCKET: nothing is sent and nothing fails', async () => {
  const env = { ...process.env }
  delete env.NOTIFY_SOCKET
  const run = start('notify.mjs', { address: '127.0.0.1:93' }, { env })
  try {
    assert.equal((await readyLine(run)).ready, true)
    run.child.kill('SIGTERM')
    assert.deepEqual(await run.exited, { code: 0, signal: null })
  } finally {
    run.child.kill('SIGKILL')
  }
})
