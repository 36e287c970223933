// The root parent ends the way its child ended, passes signals on, and a killed parent takes
// its child with it.
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { alive, runToEnd, start } from './helpers.mjs'

const serve = { listen: [['tcp4', '127.0.0.1:83']], files: [] }

test('child exits 7, the parent exits 7', async () => {
  const { code, signal, lines } = await runToEnd('core-server.mjs', { ...serve, exitCode: 7 })
  assert.equal(lines[0].ready, true)
  assert.deepEqual({ code, signal }, { code: 7, signal: null })
})

test('child killed by SIGKILL, the parent dies of SIGKILL', async () => {
  const { code, signal, lines } = await runToEnd('core-server.mjs', { ...serve, killSelf: 'SIGKILL' })
  assert.equal(lines[0].ready, true)
  assert.deepEqual({ code, signal }, { code: null, signal: 'SIGKILL' })
})

test('child dies of a signal it does not handle (SIGALRM), the parent dies of the same signal', async () => {
  const { code, signal } = await runToEnd('core-server.mjs', { ...serve, killSelf: 'SIGALRM' })
  assert.deepEqual({ code, signal }, { code: null, signal: 'SIGALRM' })
})

test('with exit: false the parent resolves with how the child ended', async () => {
  const { code, lines } = await runToEnd('core-server.mjs', { ...serve, exitCode: 3, spawn: { exit: false } })
  assert.equal(code, 0)
  assert.deepEqual(lines.at(-1), { parentSaw: { code: 3, signal: null } })
})

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT']) {
  test(`${signal} to the parent is forwarded to the child`, async () => {
    const run = start('core-server.mjs', { ...serve, spawn: { exit: false } })
    const ready = await run.next()
    run.child.kill(signal)
    const seen = await run.next()
    if (signal === 'SIGTERM') {
      assert.deepEqual(seen, { child: 'got SIGTERM' })
      assert.deepEqual(await run.next(), { parentSaw: { code: 0, signal: null } })
    } else {
      // The child installs no handler for it: it dies of it, as the parent reports.
      assert.deepEqual(seen, { parentSaw: { code: null, signal } })
    }
    assert.equal(alive(ready.pid), false)
    await run.exited
  })
}

test('a root parent with the lifecycle\'s signal handlers still waits for its child to end', async () => {
  const run = start('core-server.mjs', { ...serve, handleSignalsInParent: true, exitOnTerm: 5 })
  await run.next()
  run.child.kill('SIGTERM')
  assert.deepEqual(await run.next(), { child: 'got SIGTERM' })
  assert.deepEqual(await run.exited, { code: 5, signal: null })
})

test('kill -9 of the parent stops the child within a second', async () => {
  const run = start('core-server.mjs', serve)
  const ready = await run.next()
  assert.equal(alive(ready.pid), true)
  run.child.kill('SIGKILL')
  await run.exited
  const deadline = Date.now() + 1000
  while (alive(ready.pid) && Date.now() < deadline) await sleep(10)
  assert.equal(alive(ready.pid), false, `child ${ready.pid} outlived its parent`)
})
