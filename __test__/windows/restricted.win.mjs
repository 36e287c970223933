// Privilege separation on Windows, with real processes: an elevated node.exe (the test
// runner's token under wine, or CI's administrator) starts fixtures-restricted.mjs, which
// hands off to a restricted child of its own token and passes it the key it opened. Under
// wine (PRIVSEP_TEST_WINE=1, set by scripts/windows.mjs) what wine does not implement is
// skipped here and runs natively in CI: wine ignores integrity levels and
// DISABLE_MAX_PRIVILEGE and enforces no file ACLs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const fixture = path.join(here, 'fixtures-restricted.mjs')
const wine = process.env.PRIVSEP_TEST_WINE === '1'
const onlyNative = wine && 'wine ignores it; the Windows job in .github/workflows/ci.yml runs this natively'

const ADMINISTRATORS = 'S-1-5-32-544'
const SE_GROUP_ENABLED = 0x4
const SE_GROUP_USE_FOR_DENY_ONLY = 0x10

/** A folder with a key and a decoy; on real Windows the key is readable by Administrators only. */
function files () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-restricted-'))
  const key = path.join(dir, 'key.pem')
  const decoy = path.join(dir, 'decoy.txt')
  fs.writeFileSync(key, `secret ${process.pid} ${Date.now()}`)
  fs.writeFileSync(decoy, 'not for the child')
  if (!wine) {
    // Administrators (and SYSTEM) only, nothing inherited: the child has Administrators deny-only.
    const icacls = spawnSync('icacls', [key, '/inheritance:r', '/grant:r', '*S-1-5-32-544:F', '*S-1-5-18:F'], { encoding: 'utf8' })
    assert.equal(icacls.status, 0, icacls.stdout + icacls.stderr)
  }
  return { dir, key, decoy, secret: fs.readFileSync(key, 'utf8') }
}

/**
 * Starts the fixture; resolves with its exit status and the JSON lines it wrote (each also
 * given to `onLine`). The fixture gets the decoy open at its descriptor 3: an inheritable
 * handle (as a handle a process inherited stays), which its own child must not get.
 */
function run (f, mode, arg, { onLine, stdin = 'ignore' } = {}) {
  const decoy = fs.openSync(f.decoy, 'r')
  const child = spawn(process.execPath, [fixture, f.key, f.decoy, mode, ...(arg === undefined ? [] : [arg])], { stdio: [stdin, 'pipe', 'pipe', decoy] })
  fs.closeSync(decoy)
  const lines = []
  let pending = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    pending += chunk
    const complete = pending.split('\n')
    pending = complete.pop()
    for (const text of complete) {
      const report = JSON.parse(text)
      lines.push(report)
      onLine?.(report, child)
    }
  })
  child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr += chunk })
  // 'close' once stdout ends too; a child that outlives its parent holds stdout open, so
  // not later than 3 s after the parent's exit.
  return new Promise((resolve) => {
    const done = (code, signal) => resolve({ code, signal, lines, stderr })
    child.once('close', done)
    child.once('exit', (code, signal) => setTimeout(done, 3000, code, signal).unref())
  })
}

const childOf = (result) => {
  const report = result.lines.find((line) => line.role === 'child')
  assert.ok(report, `no report from the child (exit ${result.code}):\n${result.stderr}`)
  return report
}

test('the restricted child has Administrators deny-only and reads the key through its inherited descriptor', async () => {
  const f = files()
  try {
    const result = await run(f, 'exit', '0')
    const [parent] = result.lines
    assert.equal(parent.elevated, true, 'the parent is elevated')
    const child = childOf(result)
    assert.equal(child.ppid, parent.pid, 'the child is the parent\'s')
    assert.equal(child.key, f.secret)
    assert.equal(child.keyFd, 3, 'the first passed file is descriptor 3')
    const admins = child.token.groups.find(([sid]) => sid === ADMINISTRATORS)
    assert.ok(admins, `Administrators is still in the token: ${JSON.stringify(child.token.groups)}`)
    assert.equal(admins[1] & SE_GROUP_USE_FOR_DENY_ONLY, SE_GROUP_USE_FOR_DENY_ONLY, 'deny-only')
    assert.equal(admins[1] & SE_GROUP_ENABLED, 0, 'not enabled')
    assert.equal(child.token.elevated, false)
    assert.deepEqual(child.env, [], 'the protocol variables are gone from process.env')
    assert.equal(child.listener.fd, undefined, 'the child binds its listeners itself')
    assert.equal(child.broker, 'ERR_PRIVSEP_BROKER_CLOSED', 'no broker on Windows')
    assert.equal(result.code, 0, result.stderr)
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

test('the child inherits the key and its stdio, and no other handle of the parent', async () => {
  const f = files()
  try {
    const result = await run(f, 'exit', '0')
    assert.equal(result.lines[0].decoyHeld, true, 'the parent holds the decoy open')
    const child = childOf(result)
    const named = (file) => child.handles.filter(([, name]) => name.toLowerCase().endsWith(path.basename(file).toLowerCase()))
    assert.equal(named(f.key).length, 1, `one handle of the key: ${JSON.stringify(child.handles)}`)
    assert.deepEqual(named(f.decoy), [], 'the decoy the parent holds open is not inherited')
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

test('the parent exits with the child\'s exit code', async () => {
  const f = files()
  try {
    for (const code of [0, 3, 255]) {
      const result = await run(f, 'exit', String(code))
      childOf(result)
      assert.equal(result.code, code, result.stderr)
      assert.equal(result.lines.filter((line) => line.role === 'parent').length, 1, 'no JavaScript ran in the parent after the hand-off')
    }
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

test('with exit: false the parent resolves with the child\'s exit code', async () => {
  const f = files()
  try {
    const result = await run(f, 'wait', '7')
    childOf(result)
    const done = result.lines.find((line) => line.role === 'parent' && line.result)
    assert.deepEqual(done?.result, { code: 7, signal: null }, result.stderr)
    assert.equal(result.code, 0)
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

test('killing the parent ends the child (its kill-on-close job)', async () => {
  const f = files()
  let childPid
  try {
    const result = await run(f, 'hang', undefined, {
      onLine: (report, parent) => {
        if (report.role !== 'child') return
        childPid = report.pid
        parent.kill() // TerminateProcess: no JavaScript of the parent's runs
      }
    })
    assert.ok(childPid, result.stderr)
    const alive = () => { try { process.kill(childPid, 0); return true } catch { return false } }
    const deadline = Date.now() + 5000
    while (alive() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(alive(), false, `child ${childPid} outlived its parent`)
  } finally {
    if (childPid !== undefined) try { process.kill(childPid) } catch { /* ended, as it should */ }
    fs.rmSync(f.dir, { recursive: true, force: true, maxRetries: 5 })
  }
})

test('a process that is not elevated is refused with ERR_PRIVSEP_NOT_ROOT, pointing at filesImmediate', async () => {
  const f = files()
  try {
    const { unelevated } = childOf(await run(f, 'unelevated'))
    assert.equal(unelevated.code, 'ERR_PRIVSEP_NOT_ROOT', JSON.stringify(unelevated))
    assert.match(unelevated.message, /not elevated.*filesImmediate/s)
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

test('the child runs at Medium integrity with no privilege but SeChangeNotifyPrivilege', { skip: onlyNative }, async () => {
  const f = files()
  try {
    const child = childOf(await run(f, 'exit', '0'))
    assert.equal(child.token.integrity, 0x2000, 'Medium')
    assert.deepEqual(child.token.privileges.map(([name]) => name), ['SeChangeNotifyPrivilege'])
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

test('the child cannot open the Administrators-only key by its path', { skip: onlyNative }, async () => {
  const f = files()
  try {
    const child = childOf(await run(f, 'exit', '0'))
    assert.equal(child.keyByPath, 'EPERM', 'denied by the file\'s ACL')
    assert.equal(child.key, f.secret, 'yet it read the key through the passed descriptor')
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

// Issue 19, W1: a console as the elevated process's stdin would let the child read what is typed
// into it. The parent inherits the runner's stdin; where that is a console (real Windows with
// one), the child must get NUL instead. Wine and a runner without a console cannot show it.
test('the child does not get the elevated console as its stdin', async (t) => {
  const f = files()
  try {
    const result = await run(f, 'exit', '0', { stdin: 'inherit' })
    const [parent] = result.lines
    const child = childOf(result)
    assert.equal(child.stdinIsConsole, false, 'the child\'s stdin is the console')
    if (!parent.stdinIsConsole) t.skip('the parent\'s stdin is no console here: nothing was at stake')
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

// The same on real Windows with a console for certain: `start` runs the fixture in a console of
// its own, so the elevated parent's stdin is that console; the lines come back through a file.
test('in a console of its own, the elevated parent\'s stdin is the console and the child\'s is not', { skip: onlyNative }, async (t) => {
  const f = files()
  const report = path.join(f.dir, 'report.jsonl')
  try {
    const quoted = (text) => `"${text}"`
    const started = spawnSync('cmd.exe', ['/d', '/c', `start "privsep" /wait ${[process.execPath, fixture, f.key, f.decoy].map(quoted).join(' ')} exit 0`],
      { windowsVerbatimArguments: true, env: { ...process.env, PRIVSEP_TEST_REPORT: report }, encoding: 'utf8', timeout: 60_000 })
    const lines = fs.existsSync(report) ? fs.readFileSync(report, 'utf8').trim().split('\n').map((text) => JSON.parse(text)) : []
    const parent = lines.find((line) => line.role === 'parent' && 'stdinIsConsole' in line)
    if (parent === undefined || !parent.stdinIsConsole) {
      t.skip(`no console for the parent here (start: ${started.status} ${started.stderr}; ${lines.length} lines)`)
      return
    }
    const child = lines.find((line) => line.role === 'child')
    assert.ok(child, `no report from the child: ${JSON.stringify(lines)}`)
    assert.equal(child.stdinIsConsole, false, 'the child\'s stdin is the elevated console')
    // W1 is open: the child still shares the elevated console, so it can open CONIN$ by name and
    // read what is typed there. Recorded here, on real Windows, until the child has a console
    // of its own (docs/SECURITY.md, "Windows").
    await t.test('the child cannot open the elevated console by name (CONIN$)', { todo: 'issue 19 W1: needs a console of its own for the child and a Ctrl+C relay' }, () => {
      assert.notEqual(child.consoleInput, 'opened', 'the child opened CONIN$')
    })
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true, maxRetries: 5 })
  }
})
