// After the hand-off root runs only privsep-monitor, and the child is sealed off from it: its
// own session, no capabilities, no new privileges, not dumpable, no inspector by SIGUSR1, no
// core file written by root. Real processes as root and nobody, real signals, a real pty.
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, afterEach, describe, test } from 'node:test'
import { alive, fetchStream, fixtures, nobody, report, runToEnd, secretFile, start, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-monitor-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))

/** The command name of process `pid` (what it runs now, after any exec). */
const command = (pid) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()

/** Every program a test starts: killed after each test, so a failure leaves nothing running. */
const runs = []
afterEach(() => {
  for (const run of runs.splice(0)) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL')
})
function begin (config, options) {
  const run = start('sealed.mjs', config, options)
  runs.push(run)
  return run
}

/** The program's next report that has `key` (pino's log lines are passed over). */
async function nextWith (run, key) {
  for (;;) {
    const line = await run.next()
    if (key in line || line.error) return line
  }
}

describe('the root side after the hand-off', () => {
  test('is privsep-monitor, same pid: one thread, no Node, and the child is its child', async () => {
    const run = begin({ listen: [['tcp4', '127.0.0.1:92']] })
    const ready = await run.next()
    assert.equal(ready.ppid, run.child.pid)
    assert.equal(command(run.child.pid), 'privsep-monitor')
    const status = fs.readFileSync(`/proc/${run.child.pid}/status`, 'utf8')
    assert.match(status, /^Threads:\s+1$/m)
    assert.ok(!fs.readFileSync(`/proc/${run.child.pid}/maps`, 'utf8').includes('node'), 'no Node code mapped in the monitor')
    assert.equal(await fetchStream({ host: '127.0.0.1', port: 92 }), 'uid 65534')
    run.child.kill('SIGTERM')
    assert.deepEqual(await run.exited, { code: 0, signal: null })
  })

  test('what the program leaves behind ends with it: a detached grandchild serving its listener is killed (a subreaper)', async () => {
    const run = begin({ listen: [['tcp4', '127.0.0.1:79']], detach: true })
    const { pid: child } = await nextWith(run, 'ready')
    const { grandchild } = await nextWith(run, 'grandchild')
    await nextWith(run, 'serving')
    const stat = fs.readFileSync(`/proc/${grandchild}/stat`, 'utf8')
    const [, , , sid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number)
    assert.equal(sid, grandchild, 'the grandchild has a session of its own: the child\'s session does not hold it')
    assert.equal(await fetchStream({ host: '127.0.0.1', port: 79 }).then(() => 'served'), 'served')
    // The child ends: the grandchild, orphaned, is the monitor's now, and still serves.
    process.kill(child, 'SIGTERM')
    assert.deepEqual(await run.exited, { code: 0, signal: null })
    assert.equal(alive(grandchild), false, 'the grandchild outlived the program')
    await assert.rejects(fetchStream({ host: '127.0.0.1', port: 79 }), { code: 'ECONNREFUSED' }, 'the port is still served')
    assert.match(run.stderr, /ended 1 process\(es\) the program left behind/)
  })

  test('the child enters its folder by path as nobody: below a folder nobody cannot search it is refused, not inherited; cwd chooses another', async () => {
    const locked = path.join(dir, 'locked')
    const inner = path.join(locked, 'inner')
    fs.mkdirSync(inner, { recursive: true, mode: 0o755 })
    fs.chmodSync(locked, 0o700)
    fs.writeFileSync(path.join(inner, 'data.txt'), 'behind a root-only folder\n', { mode: 0o644 })
    const refused = begin({ listen: [['tcp4', '127.0.0.1:78']], readRelative: 'data.txt' }, { cwd: inner })
    const line = await nextWith(refused, 'parentSaw')
    assert.equal(line.error, 'ERR_PRIVSEP_NO_ACCESS', JSON.stringify(line))
    assert.match(line.message, /cannot enter .*inner: Permission denied/)
    await refused.exited

    const elsewhere = begin({ listen: [['tcp4', '127.0.0.1:78']], readRelative: 'data.txt', spawn: { cwd: '/' } }, { cwd: inner })
    const ready = await nextWith(elsewhere, 'ready')
    assert.equal(ready.cwd, '/')
    assert.equal(ready.relative, 'ENOENT', 'the file behind the root-only folder is out of reach')
    elsewhere.child.kill('SIGTERM')
    assert.deepEqual(await elsewhere.exited, { code: 0, signal: null })

    const open = path.join(dir, 'open')
    fs.mkdirSync(open, { mode: 0o755 })
    const here = begin({ listen: [['tcp4', '127.0.0.1:78']] }, { cwd: open })
    assert.equal((await nextWith(here, 'ready')).cwd, open, 'by default, the folder it was started in')
    here.child.kill('SIGTERM')
    await here.exited
  })

  test('timers started before the hand-off never run as root afterwards', async () => {
    const file = path.join(dir, 'interval.txt')
    const run = begin({ listen: [['tcp4', '127.0.0.1:93']], interval: file })
    await run.next()
    const before = fs.readFileSync(file, 'utf8')
    await sleep(200)
    assert.equal(fs.readFileSync(file, 'utf8'), before, 'the root timer kept running after the hand-off')
    run.child.kill('SIGTERM')
    await run.exited
  })

  test('a root program that throws right after an un-awaited forkExecUnprivileged still hands off, and ends with its child', async () => {
    const run = begin({ listen: [['tcp4', '127.0.0.1:94']], forgetAwait: true })
    const ready = await run.next()
    assert.equal(ready.uid, nobody.uid)
    assert.doesNotMatch(run.stderr, /thrown right after/)
    run.child.kill('SIGTERM')
    assert.deepEqual(await run.exited, { code: 0, signal: null })
    assert.equal(alive(ready.pid), false)
  })

  test('kill -USR1 of the root process opens no inspector and stops nothing', async () => {
    const run = begin({ listen: [['tcp4', '127.0.0.1:95']] })
    const ready = await run.next()
    process.kill(run.child.pid, 'SIGUSR1')
    await sleep(300)
    assert.ok(alive(run.child.pid) && alive(ready.pid), 'monitor and child still run')
    assert.doesNotMatch(run.stderr, /Debugger listening/)
    const inspector = await new Promise((resolve) => {
      net.connect(9229, '127.0.0.1').on('connect', function () { this.destroy(); resolve('open') }).on('error', (err) => resolve(err.code))
    })
    assert.equal(inspector, 'ECONNREFUSED')
    run.child.kill('SIGTERM')
    await run.exited
  })

  test('a SIGSEGV of the child leaves no core file, and the program still dies of SIGSEGV', async (t) => {
    if (fs.readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim() !== 'core') {
      t.skip('kernel.core_pattern is not "core": a core file could not be seen in the working directory')
      return
    }
    const cwd = tempDir('privsep-core-')
    fs.chmodSync(cwd, 0o777) // the child could write its own core here, were it dumpable
    const ulimit = ['sh', '-c', 'ulimit -c unlimited && exec "$@"', 'sh']
    const control = spawnSync(ulimit[0], [...ulimit.slice(1), process.execPath, '-e', 'process.kill(process.pid, "SIGSEGV")'], { cwd })
    assert.equal(control.signal, 'SIGSEGV')
    assert.ok(fs.readdirSync(cwd).some((name) => name.startsWith('core')), 'control: a plain process does leave a core here')
    for (const name of fs.readdirSync(cwd)) fs.rmSync(path.join(cwd, name))

    const { code, signal, lines } = await runToEnd('sealed.mjs', { segv: true }, { prefix: ulimit, cwd })
    assert.equal(lines[0].ready, true)
    assert.deepEqual({ code, signal }, { code: null, signal: 'SIGSEGV' })
    assert.deepEqual(fs.readdirSync(cwd), [], 'a core file was written')
    fs.rmSync(cwd, { recursive: true, force: true })
  })

  test('a SIGTERM to monitor and child at once (systemd\'s control-group kill) drains the request in flight', async () => {
    const run = begin({ listen: [['tcp4', '127.0.0.1:96']], slowMs: 300 })
    const ready = await run.next()
    assert.equal((await nextWith(run, 'serving')).serving, true)
    const response = new Promise((resolve, reject) => {
      http.get('http://127.0.0.1:96/slow', (res) => {
        let body = ''
        res.on('data', (chunk) => { body += chunk }).on('end', () => resolve(body))
      }).on('error', reject)
    })
    assert.deepEqual(await nextWith(run, 'request'), { request: '/slow' })
    process.kill(run.child.pid, 'SIGTERM')
    process.kill(ready.pid, 'SIGTERM')
    assert.equal(await response, 'done 65534\n')
    assert.deepEqual(await run.exited, { code: 0, signal: null })
  })
})

describe('the child is sealed off from root', () => {
  test('its own session without a controlling terminal: TIOCSTI into root\'s terminal fails', async (t) => {
    // script(1) gives the program a pty as its controlling terminal, as a login shell has.
    const config = JSON.stringify({ listen: [], rootInjection: true, inject: true, exitCode: 0 })
    const pty = spawn('script', ['-qfec', `${process.execPath} ${path.join(fixtures, 'sealed.mjs')} '${config}'`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    pty.stdout.on('data', (chunk) => { out += chunk })
    const code = await new Promise((resolve) => pty.on('exit', resolve))
    // The terminal echoes what an injection typed: a report may follow an "x".
    const lines = out.split(/\r?\n/).filter((line) => line.includes('{')).map((line) => JSON.parse(line.slice(line.indexOf('{'))))
    const root = lines.find((line) => line.rootInjection)
    const child = lines.find((line) => line.ready)
    assert.ok(root && child, `no report from the program (exit ${code}):\n${out}`)
    if (root.rootInjection !== 'injected') {
      t.skip(`TIOCSTI is refused here even in root's own session (${root.rootInjection}): nothing to show`)
      return
    }
    assert.notEqual(child.injection, 'injected', 'the child typed into root\'s terminal')
    assert.equal(child.sid, child.pid, 'the child leads a session of its own')
    assert.equal(child.tty, 0, 'the child has no controlling terminal')
  })

  test('what root types on its terminal never reaches the child: not through fd 0, 1 or 2, nor by opening them again', async () => {
    // script(1) gives the program a pty on all three fds, open for reading and writing, as a
    // login shell's are; lines are typed into it while the child reads every one of them.
    const config = JSON.stringify({ listen: [], readTerminal: 3, exitCode: 0 })
    const pty = spawn('script', ['-qfec', `${process.execPath} ${path.join(fixtures, 'sealed.mjs')} '${config}'`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let typing
    pty.stdout.on('data', (chunk) => {
      out += chunk
      if (typing === undefined && out.includes('readingTerminal')) {
        let n = 0
        typing = setInterval(() => { if (n < 5) pty.stdin.write(`typed-by-root-${n++}\n`) }, 200)
      }
    })
    const code = await new Promise((resolve) => pty.on('exit', resolve))
    clearInterval(typing)
    const lines = out.split(/\r?\n/).filter((line) => line.includes('{"')).map((line) => JSON.parse(line.slice(line.indexOf('{"'))))
    const result = lines.find((line) => line.terminalRead)
    assert.ok(result, `no report from the child (exit ${code}):\n${out}`)
    assert.ok(out.includes('typed-by-root-4'), 'control: the lines were typed (the terminal echoes them)')
    assert.equal(result.perl, 'ok')
    const reads = [...result.terminalRead.map(({ read }) => read), ...result.reopened.map(({ what }) => what)]
    const refused = reads.filter((text) => !text.includes('typed-by-root')).length
    report('terminal reads', { tried: reads.length, refused, lost: reads.length - refused })
    for (const { fd, read, why } of result.terminalRead) assert.doesNotMatch(read, /typed-by-root/, `the child read root's terminal through fd ${fd} (${why})`)
    for (const { fd, what } of result.reopened) assert.doesNotMatch(what, /typed-by-root/, `the child read root's terminal by opening fd ${fd} again`)
    assert.equal(result.terminalRead[0].why, 'end of file', 'stdin is /dev/null')
    for (const fd of [1, 2]) assert.equal(parseInt(result.flags[fd], 8) & 3, 1, `fd ${fd} is write-only (flags ${result.flags[fd]})`)
  })

  test('stdout that is a pty\'s master side is kept as it is: the child\'s output still arrives (opening it again would make a new pty)', () => {
    const driver = `import json, os, select, subprocess, sys
m, s = os.openpty()
p = subprocess.run([sys.argv[1], sys.argv[2], json.dumps({"listen": [], "exitCode": 0})], stdout=m, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
out = b""
while select.select([s], [], [], 0.5)[0]:
    out += os.read(s, 65536)
print(json.dumps({"code": p.returncode, "out": out.decode(errors="replace")}))`
    const result = spawnSync('python3', ['-c', driver, process.execPath, path.join(fixtures, 'sealed.mjs')], { encoding: 'utf8', timeout: 30_000 })
    const { code, out } = JSON.parse(result.stdout || '{}')
    assert.equal(code, 0, result.stderr)
    assert.match(out, /"ready":true/, 'the child\'s report did not come through the master')
  })

  test('inheritable and ambient capabilities of the root process do not reach the child: all five sets empty, NoNewPrivs', async () => {
    const run = begin({ listen: [], exitCode: 0 },
      { prefix: ['setpriv', '--inh-caps', '+net_bind_service,+net_raw', '--ambient-caps', '+net_bind_service,+net_raw'] })
    const ready = await run.next()
    for (const [set, value] of Object.entries(ready.caps)) assert.equal(value, '0000000000000000', `${set} of the child`)
    assert.equal(ready.noNewPrivs, '1')
    assert.deepEqual(await run.exited, { code: 0, signal: null })
  })

  test('a set-user-ID root program run by the child stays uid nobody', async () => {
    const copy = path.join(dir, 'id-setuid')
    fs.copyFileSync('/usr/bin/id', copy)
    fs.chmodSync(copy, 0o4755)
    assert.equal(spawnSync(copy, ['-u'], { uid: nobody.uid, gid: nobody.gid, encoding: 'utf8' }).stdout.trim(), '0',
      'control: without no_new_privs the copy makes nobody root')
    const { lines } = await runToEnd('sealed.mjs', { listen: [], setuidProgram: copy, exitCode: 0 })
    assert.equal(lines[0].setuidProgram, String(nobody.uid))
  })

  test('another process of the same user cannot take the key or the listener from the moment the child exists: pidfd_getfd and ptrace refused before restorePassedFiles too', async () => {
    // An unrelated process of nobody, started with the program, waits for the monitor's child
    // and then tries pidfd_getfd on fds 3..9 and PTRACE_SEIZE in a tight loop: across the
    // drop, the exec, Node's start-up and restorePassedFiles().
    const steal = path.join(dir, 'steal')
    execFileSync('cc', ['-o', steal, path.join(fixtures, 'steal.c')])
    const key = secretFile(dir, 'steal-key.pem')
    let tried = 0
    let refused = 0
    for (let round = 0; round < 3; round++) {
      const run = begin({ listen: [['tcp4', '127.0.0.1:91']], open: [key.file] })
      const attacker = spawnSync(steal, [String(run.child.pid), '1500'], { uid: nobody.uid, gid: nobody.gid, encoding: 'utf8', timeout: 10_000 })
      const ready = await nextWith(run, 'ready')
      run.child.kill('SIGTERM')
      await run.exited
      const result = JSON.parse(attacker.stdout)
      assert.equal(result.child, ready.pid, `the attacker saw the child (${attacker.stderr})`)
      assert.ok(result.attempts > 100, `only ${result.attempts} attempts`)
      tried += 3
      refused += Number(result.stolenFile === '') + Number(!result.stolenSocket) + Number(!result.seized)
      assert.equal(result.stolenFile, '', 'the key was taken with pidfd_getfd')
      assert.equal(result.stolenSocket, false, 'the listener was taken with pidfd_getfd')
      assert.equal(result.seized, false, 'the attacker attached to the child with ptrace')
    }
    report('same user attacks', { tried, refused, lost: tried - refused })
  })

  test('the child execs in secure-execution mode, then holds nobody\'s gid as real, effective and saved; NODE_OPTIONS reaches it as command-line options', async () => {
    const run = begin({ listen: [], exitCode: 0 }, { env: { ...process.env, NODE_OPTIONS: '--title=privsep-opts "--max-old-space-size=123"' } })
    const ready = await nextWith(run, 'ready')
    assert.deepEqual(ready.gids.split(/\s+/).map(Number), [nobody.gid, nobody.gid, nobody.gid, nobody.gid])
    assert.deepEqual(ready.execArgv.slice(0, 2), ['--title=privsep-opts', '--max-old-space-size=123'])
    assert.equal(ready.title, 'privsep-opts')
    assert.match(run.stderr, /user "nobody", which other daemons share.*useradd --system --no-create-home --shell \/usr\/sbin\/nologin/)
    assert.deepEqual(await run.exited, { code: 0, signal: null })
  })

  test('another process of the same uid cannot read the child\'s /proc/<pid>/environ', async () => {
    const run = begin({ listen: [['tcp4', '127.0.0.1:97']] })
    const ready = await run.next()
    const read = spawnSync('cat', [`/proc/${ready.pid}/environ`], { uid: nobody.uid, gid: nobody.gid, encoding: 'utf8' })
    assert.notEqual(read.status, 0, 'nobody read the child\'s environment')
    assert.match(read.stderr, /Permission denied/)
    run.child.kill('SIGTERM')
    await run.exited
  })
})

describe('bad input is refused before anything starts', () => {
  const refused = async (spawnOptions, listen = []) => {
    const { lines } = await runToEnd('sealed.mjs', { listen, spawn: spawnOptions })
    return lines.at(-1)
  }

  test('group root (gid 0): ERR_PRIVSEP_INVALID_ARGUMENT', async () => {
    const line = await refused({ group: 'root' })
    assert.equal(line.error, 'ERR_PRIVSEP_INVALID_ARGUMENT')
    assert.match(line.message, /gid 0/)
  })

  for (const umask of ['NaN', -1, 0.5, 1e20, 0o1000, '"022"']) {
    test(`umask ${umask}: ERR_PRIVSEP_INVALID_ARGUMENT`, async () => {
      const line = await refused({ umask: JSON.parse(umask === 'NaN' ? 'null' : String(umask)) ?? Number.NaN })
      assert.equal(line.error, 'ERR_PRIVSEP_INVALID_ARGUMENT', line.message)
      assert.match(line.message, /umask/)
    })
  }

  test('signals that cannot be forwarded: ERR_PRIVSEP_INVALID_ARGUMENT', async () => {
    for (const signals of [['SIGKILL'], ['SIGNOPE']]) {
      const line = await refused({ signals })
      assert.equal(line.error, 'ERR_PRIVSEP_INVALID_ARGUMENT', line.message)
    }
  })

  test('a program the user cannot read: ERR_PRIVSEP_NO_ACCESS naming the user and the path', async () => {
    const hidden = fs.mkdtempSync(path.join(dir, 'hidden-'))
    fs.chmodSync(hidden, 0o700)
    const program = path.join(hidden, 'app.mjs')
    fs.copyFileSync(path.join(fixtures, 'sealed.mjs'), program)
    fs.mkdirSync(path.join(hidden, 'node_modules'))
    fs.symlinkSync(path.join(fixtures, '..', '..'), path.join(hidden, 'node_modules', 'privsep'))
    const result = spawnSync(process.execPath, [program, JSON.stringify({ listen: [] })], { encoding: 'utf8' })
    const line = JSON.parse(result.stdout.trim().split('\n').at(-1) || '{}')
    assert.equal(line.error, 'ERR_PRIVSEP_NO_ACCESS', line.message)
    assert.match(line.message, /"nobody"/)
    assert.ok(line.message.includes(program), line.message)
  })

  test('a missing or non-executable monitor: ERR_PRIVSEP_NATIVE_LOAD naming each path tried', async () => {
    // A copy of the package whose local monitor is broken; no platform package is installed.
    const triple = fs.readdirSync(path.join(fixtures, '..', '..')).find((name) => /^privsep\.linux-.*\.node$/.test(name)).slice(8, -5)
    const pkg = path.join(dir, 'pkg')
    fs.mkdirSync(path.join(pkg, 'dist'), { recursive: true })
    fs.copyFileSync(path.join(fixtures, '..', '..', 'dist', 'index.js'), path.join(pkg, 'dist', 'index.js'))
    fs.copyFileSync(path.join(fixtures, '..', '..', `privsep.${triple}.node`), path.join(pkg, `privsep.${triple}.node`))
    fs.writeFileSync(path.join(pkg, 'package.json'), '{"type":"module"}')
    const monitor = path.join(pkg, `privsep-monitor.${triple}`)
    const script = 'import { Privsep } from "./dist/index.js"; new Privsep().forkExecUnprivileged({ user: "nobody" }).catch((err) => { console.log(JSON.stringify({ code: err.code, message: err.message })) })'
    const attempt = () => JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: pkg, encoding: 'utf8' }))
    const cases = [[null, /no such file/i], [0o644, /EACCES|permission/i]]
    for (const [mode, why] of cases) {
      if (mode !== null) {
        fs.copyFileSync(path.join(fixtures, '..', '..', `privsep-monitor.${triple}`), monitor)
        fs.chmodSync(monitor, mode)
      }
      const { code, message } = attempt()
      assert.equal(code, 'ERR_PRIVSEP_NATIVE_LOAD', message)
      assert.ok(message.includes(monitor) && message.includes(`privsep-${triple}`), message)
      assert.match(message, why)
    }
  })
})

describe('unix sockets across restarts', () => {
  const socketPath = path.join(dir, 'ctl.sock')

  test('the monitor removes its socket file at the end; a restart serves the same path', async () => {
    for (let round = 0; round < 2; round++) {
      const run = begin({ listen: [['unix', socketPath, { mode: 0o660 }]] })
      await run.next()
      assert.equal(fs.statSync(socketPath).mode & 0o777, 0o660)
      assert.equal(await fetchStream({ path: socketPath }), 'uid 65534')
      run.child.kill('SIGTERM')
      assert.deepEqual(await run.exited, { code: 0, signal: null })
      assert.equal(fs.existsSync(socketPath), false, 'the socket file outlived the program')
    }
  })

  test('a stale socket file (nobody accepts on it) is replaced; a live one is not', async () => {
    const live = net.createServer().listen(socketPath)
    await new Promise((resolve) => live.on('listening', resolve))
    const busy = await runToEnd('sealed.mjs', { listen: [['unix', socketPath]] })
    assert.equal(busy.lines[0].error, 'EADDRINUSE', busy.lines[0].message)
    live.close()
    await new Promise((resolve) => live.on('close', resolve))
    // A server that died without unlinking leaves its file behind: connect is refused.
    const stale = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`])
    assert.equal(stale.signal, 'SIGKILL')
    assert.equal(fs.statSync(socketPath).isSocket(), true)
    const run = begin({ listen: [['unix', socketPath]] })
    await run.next()
    assert.equal(await fetchStream({ path: socketPath }), 'uid 65534')
    run.child.kill('SIGTERM')
    await run.exited
  })

  test('anything else at the path is refused with ERR_PRIVSEP_SOCKET_PATH and kept', async () => {
    fs.writeFileSync(socketPath, 'precious')
    const { lines } = await runToEnd('sealed.mjs', { listen: [['unix', socketPath]] })
    assert.equal(lines[0].error, 'ERR_PRIVSEP_SOCKET_PATH', lines[0].message)
    assert.match(lines[0].message, /nothing was deleted/)
    assert.equal(fs.readFileSync(socketPath, 'utf8'), 'precious')
    fs.rmSync(socketPath)
  })
})

test('NODE_EXTRA_CA_CERTS reaches the child, which starts in secure-execution mode where Node skips it (Node 22.19+; older ones say so)', async () => {
  const ca = tempDir('privsep-extra-ca-')
  try {
    const openssl = (...args) => execFileSync('openssl', args, { cwd: ca, stdio: ['ignore', 'ignore', 'pipe'] })
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=privsep test CA')
    openssl('req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost')
    fs.writeFileSync(path.join(ca, 'san.ext'), 'subjectAltName=DNS:localhost\n')
    openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'san.ext')
    for (const file of fs.readdirSync(ca)) fs.chmodSync(path.join(ca, file), 0o644) // a test CA: nobody reads it
    const config = { address: '127.0.0.1:72', key: path.join(ca, 'leaf.key'), cert: path.join(ca, 'leaf.pem') }
    const { NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, ...env } = process.env
    // The control: without the variable the CA is unknown, so the probe can fail.
    const without = await runToEnd('extra-ca.mjs', config, { env })
    assert.equal(without.lines.at(-1)?.error, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', without.stderr)
    const run = await runToEnd('extra-ca.mjs', config, { env: { ...env, NODE_EXTRA_CA_CERTS: path.join(ca, 'ca.pem') } })
    const [major, minor] = process.versions.node.split('.').map(Number)
    if (major > 22 || (major === 22 && minor >= 19)) {
      assert.deepEqual(run.lines.at(-1), { node: process.version, body: 'trusted' }, run.stderr)
    } else {
      assert.equal(run.lines.at(-1)?.error, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
      assert.match(run.stderr, /NODE_EXTRA_CA_CERTS \(.*ca\.pem\) is not applied in the child: it starts in secure-execution mode/)
    }
  } finally {
    fs.rmSync(ca, { recursive: true, force: true })
  }
})
