// Every way the core flow can be misused or fed bad input ends in an Error with its own
// stable code, a message naming what was involved, and no crash.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import dgram from 'node:dgram'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { Privsep, PrivsepError } from 'privsep'
import { fixtures, nobody, percentEncode, report, runToEnd, secretFile, tempDir } from './helpers.mjs'

const dir = tempDir('privsep-errors-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Runs core-probe.mjs and returns its step reports. */
async function probe (config, options = {}) {
  const { lines, stderr } = await runToEnd('core-probe.mjs', config, options)
  assert.ok(lines.length > 0, `probe printed nothing; stderr:\n${stderr}`)
  for (const line of lines) if (line.code) assert.ok(line.privsepError, `${line.code} is not a PrivsepError: ${line.message}`)
  return lines
}

function throwsCode (fn, code, pattern) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof PrivsepError, `${err.code} is a ${err.constructor.name}, not a PrivsepError`)
    assert.equal(err.code, code, err.message)
    if (pattern) assert.match(err.message, pattern)
    return true
  })
}

describe('in the root parent', () => {
  const parent = new Privsep()
  after(() => parent.cleanupPassedFiles())

  test('bad networks, addresses, backlogs and paths: ERR_PRIVSEP_INVALID_ARGUMENT', () => {
    throwsCode(() => parent.listen('sctp', ':25'), 'ERR_PRIVSEP_INVALID_ARGUMENT', /sctp/)
    throwsCode(() => parent.listen('tcp', 'localhost:25'), 'ERR_PRIVSEP_INVALID_ARGUMENT', /localhost:25/)
    throwsCode(() => parent.listen('tcp', '127.0.0.1:70000'), 'ERR_PRIVSEP_INVALID_ARGUMENT')
    throwsCode(() => parent.listen('tcp4', '[::1]:25'), 'ERR_PRIVSEP_INVALID_ARGUMENT', /family/)
    throwsCode(() => parent.listen('unix', 'x'.repeat(200)), 'ERR_PRIVSEP_INVALID_ARGUMENT')
    throwsCode(() => parent.listen('tcp', '127.0.0.1:84', { backlog: -1 }), 'ERR_PRIVSEP_INVALID_ARGUMENT', /backlog/)
    throwsCode(() => parent.openPrivileged(''), 'ERR_PRIVSEP_INVALID_ARGUMENT')
  })

  test('listening twice on one address: ERR_PRIVSEP_ALREADY_LISTENING, port 0 included', () => {
    parent.listen('tcp', '127.0.0.1:85')
    throwsCode(() => parent.listen('tcp', '127.0.0.1:85'), 'ERR_PRIVSEP_ALREADY_LISTENING', /127\.0\.0\.1:85/)
    parent.listen('udp', '127.0.0.1:0')
    throwsCode(() => parent.listen('udp', '127.0.0.1:0'), 'ERR_PRIVSEP_ALREADY_LISTENING')
  })

  test('with filesImmediate, port 0 may be listened on more than once', () => {
    const immediate = new Privsep()
    immediate.filesImmediate = true
    const a = immediate.listen('udp4', '127.0.0.1:0')
    const b = immediate.listen('udp4', '127.0.0.1:0')
    assert.notEqual(a.fd, b.fd)
    immediate.listen('udp4', '127.0.0.1:91')
    throwsCode(() => immediate.listen('udp4', '127.0.0.1:91'), 'ERR_PRIVSEP_ALREADY_LISTENING')
  })

  test('serving the parent\'s listener: ERR_PRIVSEP_PARENT_ONLY', () => {
    const listener = parent.listen('tcp', '127.0.0.1:86')
    throwsCode(() => listener.fd, 'ERR_PRIVSEP_PARENT_ONLY', /127\.0\.0\.1:86/)
    throwsCode(() => net.createServer().listen(listener), 'ERR_PRIVSEP_PARENT_ONLY')
    throwsCode(() => dgram.createSocket('udp4').bind(parent.listen('udp4', '127.0.0.1:86')), 'ERR_PRIVSEP_PARENT_ONLY')
  })

  test('an address already in use: EADDRINUSE with errno and syscall', async () => {
    const server = net.createServer().listen(87, '127.0.0.1')
    await new Promise((resolve) => server.on('listening', resolve))
    try {
      assert.throws(() => parent.listen('tcp4', '127.0.0.1:87'), (err) => {
        assert.ok(err instanceof PrivsepError)
        assert.equal(err.code, 'EADDRINUSE')
        assert.equal(err.errno, -98)
        assert.equal(err.syscall, 'bind')
        assert.match(err.message, /127\.0\.0\.1:87/)
        return true
      })
    } finally {
      server.close()
    }
  })

  test('a key path that is not a regular file: ERR_PRIVSEP_NOT_FILE, a FIFO does not block', () => {
    throwsCode(() => parent.openPrivileged('/dev/null'), 'ERR_PRIVSEP_NOT_FILE', /\/dev\/null/)
    const fifo = path.join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    throwsCode(() => parent.openPrivileged(fifo), 'ERR_PRIVSEP_NOT_FILE', /fifo/)
  })

  test('a key path through a folder another user owns or can write: ERR_PRIVSEP_UNSAFE_PATH, whatever a symlink there points at', () => {
    const theirs = path.join(dir, 'theirs')
    fs.mkdirSync(theirs)
    fs.chownSync(theirs, nobody.uid, nobody.gid)
    for (const target of ['/proc/self/mem', '/proc/self/maps', '/etc/shadow']) {
      fs.rmSync(path.join(theirs, 'key.pem'), { force: true })
      fs.symlinkSync(target, path.join(theirs, 'key.pem'))
      throwsCode(() => parent.openPrivileged(path.join(theirs, 'key.pem')), 'ERR_PRIVSEP_UNSAFE_PATH', /owned by uid 65534/)
    }
    fs.chownSync(theirs, 0, 0)
    fs.chmodSync(theirs, 0o777)
    throwsCode(() => parent.openPrivileged(path.join(theirs, 'key.pem')), 'ERR_PRIVSEP_UNSAFE_PATH', /others can write/)
    throwsCode(() => parent.listen('unix', path.join(theirs, 'ctl.sock')), 'ERR_PRIVSEP_UNSAFE_PATH', /others can write/)
    // A pid file root would write where the user can plant a symlink: refused, nothing started.
    const planted = new Privsep()
    fs.symlinkSync('/etc/passwd-privsep-never', path.join(theirs, 'app.pid'))
    return planted.forkExecUnprivileged({ user: 'nobody', pidFile: path.join(theirs, 'app.pid'), exit: false }).then(
      () => assert.fail('a pid file in a folder others can write was accepted'),
      (err) => {
        assert.deepEqual([err.code, err.path], ['ERR_PRIVSEP_UNSAFE_PATH', path.join(theirs, 'app.pid')])
        assert.equal(fs.existsSync('/etc/passwd-privsep-never'), false)
        throwsCode(() => parent.openPrivileged('/proc/self/mem'), 'ERR_PRIVSEP_UNSAFE_PATH', /procfs/)
        throwsCode(() => parent.openPrivileged('/sys/kernel/notes'), 'ERR_PRIVSEP_UNSAFE_PATH', /sysfs/)
      })
  })

  test('a terminal as a key path is refused before it is opened, so root gains no controlling terminal', async () => {
    // A pty whose slave no process has as its terminal; the probe runs as a session leader
    // without one (setsid), where opening a terminal would make it the controlling one.
    const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
    const holder = spawn(python, ['-c', 'import os, sys, time; m, s = os.openpty(); print(os.ttyname(s), flush=True); time.sleep(60)'], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const tty = (await new Promise((resolve) => holder.stdout.once('data', resolve))).toString().trim()
      assert.match(tty, /^\/dev\/pts\/\d+$/)
      const lines = await probe({ steps: [['ttyNr'], ['open', tty], ['ttyNr']] }, { prefix: ['setsid', '--wait'] })
      assert.deepEqual(lines.map((l) => l.code ?? l.ok), [0, 'ERR_PRIVSEP_UNSAFE_PATH', 0])
      assert.match(lines[1].message, /devpts/)
    } finally {
      holder.kill()
    }
  })

  test('a missing key file: ENOENT naming the path, as a PrivsepError with errno and syscall', () => {
    const missing = path.join(dir, 'missing.pem')
    assert.throws(() => parent.openPrivileged(missing), (err) => {
      assert.ok(err instanceof PrivsepError)
      // As root the path is walked one component at a time: the missing one is found by fstatat.
      assert.deepEqual([err.code, err.errno, err.syscall, err.path], ['ENOENT', -2, 'fstatat', missing])
      assert.match(err.message, /missing\.pem/)
      return true
    })
  })

  test('a unix socket path that is refused names the path in err.path', () => {
    const file = path.join(dir, 'not-a-socket')
    fs.writeFileSync(file, '')
    assert.throws(() => parent.listen('unix', file), (err) => {
      assert.ok(err instanceof PrivsepError)
      assert.deepEqual([err.code, err.path], ['ERR_PRIVSEP_SOCKET_PATH', file])
      return true
    })
    const missing = path.join(dir, 'no-folder', 'x.sock')
    assert.throws(() => parent.listen('unix', missing), (err) => err.code === 'ENOENT' && err.path === missing)
  })

  test('an unknown user or group: ERR_PRIVSEP_UNKNOWN_USER / _GROUP with how to create one, nothing spawned', async () => {
    const isPrivsepError = (code, hint) => (err) => err instanceof PrivsepError && err.code === code && hint.test(err.message)
    await assert.rejects(parent.forkExecUnprivileged({ user: 'no-such-user-here', exit: false }),
      isPrivsepError('ERR_PRIVSEP_UNKNOWN_USER', /no such user "no-such-user-here": create it \(useradd --system no-such-user-here\) or name an existing/))
    await assert.rejects(parent.forkExecUnprivileged({ user: 'nobody', group: 'no-such-group', exit: false }),
      isPrivsepError('ERR_PRIVSEP_UNKNOWN_GROUP', /groupadd --system no-such-group/))
  })

  test('running the child as root or without a user: ERR_PRIVSEP_INVALID_ARGUMENT', async () => {
    await assert.rejects(parent.forkExecUnprivileged({ user: 'root', exit: false }), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT', message: /root/ })
    await assert.rejects(parent.forkExecUnprivileged({ exit: false }), { code: 'ERR_PRIVSEP_INVALID_ARGUMENT' })
  })
})

test('calls after forkExecUnprivileged in the parent: ERR_PRIVSEP_STATE', async () => {
  const lines = await probe({
    steps: [['listen', 'tcp4', '127.0.0.1:88'], ['fork', { user: 'nobody', exit: false }], ['listen', 'tcp4', '127.0.0.1:89'], ['fork', { user: 'nobody', exit: false }]],
    childSteps: [['restore'], ['exit', 0]]
  })
  assert.deepEqual(lines.map((l) => `${l.step} ${l.code ?? 'ok'}`),
    ['listen ok', 'restore ok', 'fork ok', 'listen ERR_PRIVSEP_STATE', 'fork ERR_PRIVSEP_STATE'])
  assert.deepEqual(lines[2].ok, { code: 0, signal: null })
})

test('a drop that leaves capabilities behind: ERR_PRIVSEP_PRIVILEGE_DROP, no child runs', async () => {
  // A root process with an inheritable capability, where capset(2) is a no-op
  // (fixtures/fake-capset.c): the child as nobody would keep it, and setuid(0) still fails,
  // so only the post-drop capget check can stop it before exec.
  const fake = path.join(dir, 'fake-capset')
  execFileSync('cc', ['-o', fake, path.join(fixtures, 'fake-capset.c')])
  const lines = await probe({
    steps: [['listen', 'tcp4', '127.0.0.1:90'], ['fork', { user: 'nobody', exit: false }]],
    childSteps: [['exit', 0]]
  }, { prefix: ['setpriv', '--inh-caps', '+net_raw', fake] })
  assert.equal(lines.length, 2)
  assert.equal(lines[1].code, 'ERR_PRIVSEP_PRIVILEGE_DROP', lines[1].message)
  assert.match(lines[1].message, /capability/)
})

describe('a real child of a root parent, misusing the API', () => {
  /** The parent passes 127.0.0.1:0 (no fixed port to collide on); the child runs `childSteps`. */
  async function child (childSteps) {
    const lines = await probe({ steps: [['listen', 'tcp4', '127.0.0.1:0'], ['fork', { user: 'nobody', exit: false }]], childSteps })
    assert.equal(lines.at(-1).step, 'fork', JSON.stringify(lines))
    return lines.slice(1, -1)
  }

  test('listen before restorePassedFiles(): ERR_PRIVSEP_NO_PASSED_FILES says to call restorePassedFiles() first', async () => {
    const [line] = await child([['listen', 'tcp4', '127.0.0.1:0'], ['exit', 0]])
    assert.equal(line.code, 'ERR_PRIVSEP_NO_PASSED_FILES')
    assert.ok(line.privsepError)
    assert.match(line.message, /child of a privsep parent .*restorePassedFiles\(\) was not called yet/)
    assert.doesNotMatch(line.message, /not started by a privsep parent/)
  })

  test('a second listen for a listener already claimed: ERR_PRIVSEP_ALREADY_LISTENING says it was claimed', async () => {
    const lines = await child([['restore'], ['listen', 'tcp4', '127.0.0.1:0'], ['listen', 'tcp4', '127.0.0.1:0'], ['exit', 0]])
    assert.deepEqual(lines.map((l) => l.code ?? 'ok'), ['ok', 'ok', 'ERR_PRIVSEP_ALREADY_LISTENING'])
    assert.ok(lines[2].privsepError)
    assert.match(lines[2].message, /tcp4 127\.0\.0\.1:0.*already claimed by an earlier listen\(\)/)
    assert.doesNotMatch(lines[2].message, /passed: none/)
  })

  test('forkExecUnprivileged in the child: ERR_PRIVSEP_NOT_ROOT says it is the child', async () => {
    const lines = await child([['restore'], ['fork', { user: 'nobody' }], ['exit', 0]])
    assert.equal(lines[1].code, 'ERR_PRIVSEP_NOT_ROOT')
    assert.ok(lines[1].privsepError)
    assert.match(lines[1].message, /unprivileged child privsep started \(uid 65534\)/)
  })
})

describe('as nobody, not started by a privsep parent', () => {
  const asNobody = { uid: nobody.uid, gid: nobody.gid }

  test('restorePassedFiles and listen: ERR_PRIVSEP_NO_PASSED_FILES with a hint', async () => {
    const lines = await probe({ steps: [['restore'], ['listen', 'tcp', ':8025'], ['open', '/etc/hostname']] }, asNobody)
    for (const line of lines) {
      assert.equal(line.code, 'ERR_PRIVSEP_NO_PASSED_FILES')
      assert.match(line.message, /root/)
    }
  })

  test('forkExecUnprivileged: ERR_PRIVSEP_NOT_ROOT, naming the uid as the process\'s, not root\'s', async () => {
    const [line] = await probe({ steps: [['fork', { user: 'nobody' }]] }, asNobody)
    assert.equal(line.code, 'ERR_PRIVSEP_NOT_ROOT')
    assert.ok(line.privsepError)
    assert.match(line.message, /runs as uid 65534, not as root; start the program as root \(uid 0\)/)
    assert.doesNotMatch(line.message, /root \(uid 65534\)/)
  })

  test('with filesImmediate it listens and opens directly, and forkExecUnprivileged runs in-process', async () => {
    const lines = await probe({ steps: [['immediate'], ['restore'], ['listen', 'tcp4', '127.0.0.1:0'], ['listenerFd', 0], ['open', '/etc/hostname'], ['fork', { user: 'nobody' }]] }, asNobody)
    assert.deepEqual(lines.map((l) => l.code ?? 'ok'), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok'])
    assert.equal(typeof lines[3].ok, 'number')
    assert.equal(typeof lines[4].ok, 'number')
    assert.deepEqual(lines[5].ok, { code: null, signal: null, inProcess: true })
  })
})

describe('restoring from the environment, as nobody', () => {
  const key = secretFile(dir, 'restore-key.pem')
  /** Starts the probe as nobody with the protocol variables and extra fds from index 3. */
  function restore (vars, fds = [], steps = [['restore']]) {
    const env = { ...process.env, PRIVSEP_PID: String(process.pid), ...vars }
    return probe({ steps, childSteps: steps }, { uid: nobody.uid, gid: nobody.gid, env, stdio: ['ignore', 'pipe', 'pipe', ...fds] })
  }
  const immediate = new Privsep()
  immediate.filesImmediate = true
  const tcp = immediate.listen('tcp4', '127.0.0.1:0')

  test('a root process with the protocol variables (crafted: its parent is no monitor) refuses the child role: ERR_PRIVSEP_ROOT_CHILD, the decoy untaken', async () => {
    const decoy = fs.openSync('/etc/hostname', 'r')
    try {
      const steps = [['restore'], ['env']]
      const env = { ...process.env, PRIVSEP_PID: String(process.pid), PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=file:/etc/ssl/private/key.pem' }
      const [restored, left] = await probe({ steps, childSteps: steps }, { env, stdio: ['ignore', 'pipe', 'pipe', decoy] })
      assert.equal(restored.code, 'ERR_PRIVSEP_ROOT_CHILD', JSON.stringify(restored))
      assert.match(restored.message, /PRIVSEP_PID, PRIVSEP_FDS, PRIVSEP_FILES/)
      assert.deepEqual(left.ok.sort(), ['PRIVSEP_FDS', 'PRIVSEP_FILES', 'PRIVSEP_PID'], 'nothing restored, nothing unset')
    } finally {
      fs.closeSync(decoy)
    }
  })

  test('malformed variables: ERR_PRIVSEP_ENV_MALFORMED', async () => {
    for (const vars of [
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: 'x=tcp4:127.0.0.1%3A0' },
      { PRIVSEP_FDS: 'one', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' },
      { PRIVSEP_FDS: '2', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' },
      { PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' },
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4' }
    ]) {
      const [line] = await restore(vars, [tcp.fd])
      assert.equal(line.code, 'ERR_PRIVSEP_ENV_MALFORMED', JSON.stringify(vars))
    }
  })

  test('what docs/PROTOCOL.md does not allow, once accepted: ERR_PRIVSEP_ENV_MALFORMED', async () => {
    const cases = [
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=file:/k%+1' }, // a sign where a hex digit belongs
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3a0' }, // lower-case hex
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=file:%2Fk' }, // an escape of a byte that stays
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=file:/a b' }, // a byte that is escaped, raw
      { PRIVSEP_FDS: '01', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' }, // leading zeros
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '03=tcp4:127.0.0.1%3A0' },
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A00' },
      { PRIVSEP_PID: `0${process.pid}`, PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' },
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0,' }, // an empty entry
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp:%3A0' }, // an address not in its canonical form
      { PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp6:[%3A%3A1%255]%3A0' } // a scope id off link-local
    ]
    for (const vars of cases) {
      const [line] = await restore(vars, [tcp.fd])
      assert.equal(line.code, 'ERR_PRIVSEP_ENV_MALFORMED', JSON.stringify(vars))
    }
    report('bad inputs', { tried: cases.length, refused: cases.length })
  })

  test('an O_PATH or write-only descriptor declared as a file: ERR_PRIVSEP_NOT_FILE', async () => {
    for (const flags of [0o10000000 /* O_PATH */, fs.constants.O_WRONLY]) {
      const fd = fs.openSync(key.file, flags)
      const [line] = await restore({ PRIVSEP_FDS: '1', PRIVSEP_FILES: `3=file:${percentEncode(key.file)}` }, [fd])
      fs.closeSync(fd)
      assert.equal(line.code, 'ERR_PRIVSEP_NOT_FILE', String(flags))
    }
  })

  /** Runs `setup` (Python that leaves a socket in `s`), puts it at fd 3, and restores as nobody. */
  async function restoreFromPython (setup, files) {
    const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
    const steps = [['restore']]
    const code = `import os, socket, sys
${setup}
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.setgroups([]); os.setgid(${nobody.gid}); os.setuid(${nobody.uid})
os.execv(sys.argv[1], sys.argv[1:])`
    const env = { ...process.env, PRIVSEP_PID: String(process.pid), PRIVSEP_FDS: '1', PRIVSEP_FILES: files }
    return probe({ steps, childSteps: steps }, { argv: [python, '-c', code, process.execPath, path.join(fixtures, 'core-probe.mjs'), JSON.stringify({ steps, childSteps: steps })], env })
  }

  test('an MPTCP socket declared as tcp4, UDP-Lite as udp4: ERR_PRIVSEP_SOCKET_TYPE', async () => {
    for (const [protocol, kind, network] of [[262, 'SOCK_STREAM', 'tcp4'], [136, 'SOCK_DGRAM', 'udp4']]) {
      const listen = kind === 'SOCK_STREAM' ? 's.listen()' : ''
      const [line] = await restoreFromPython(`s = socket.socket(socket.AF_INET, socket.${kind}, ${protocol}); s.bind(('127.0.0.1', 0)); ${listen}`, `3=${network}:127.0.0.1%3A0`)
      assert.equal(line.code, 'ERR_PRIVSEP_SOCKET_TYPE', line.message)
      assert.match(line.message, new RegExp(`Other\\(${protocol}\\)`))
    }
  })

  test('a unix socket at a path that is not UTF-8: ERR_PRIVSEP_SOCKET_ADDRESS, not compared lossily', async () => {
    const bytes = path.join(dir, 'raw')
    const [line] = await restoreFromPython(`s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(b'${bytes}\\xff.sock'); s.listen()`,
      `3=unix:${percentEncode(`${bytes}\ufffd.sock`)}`)
    assert.equal(line.code, 'ERR_PRIVSEP_SOCKET_ADDRESS', line.message)
  })

  test('duplicate entries: ERR_PRIVSEP_ENV_DUPLICATE', async () => {
    const [line] = await restore({ PRIVSEP_FDS: '2', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0,3=file:/k' }, [tcp.fd])
    assert.equal(line.code, 'ERR_PRIVSEP_ENV_DUPLICATE')
  })

  test('a parent pid that is not the parent: ERR_PRIVSEP_PARENT_MISMATCH', async () => {
    const [line] = await restore({ PRIVSEP_PID: '1', PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' }, [tcp.fd])
    assert.equal(line.code, 'ERR_PRIVSEP_PARENT_MISMATCH')
  })

  test('an fd that is closed: EBADF', async () => {
    const [line] = await restore({ PRIVSEP_FDS: '1', PRIVSEP_FILES: '999=tcp4:127.0.0.1%3A0' }, [tcp.fd])
    assert.equal(line.code, 'EBADF')
    assert.equal(line.syscall, 'fstat')
    assert.match(line.message, /fd 999/)
  })

  test('a regular file where a socket is declared: ERR_PRIVSEP_NOT_SOCKET', async () => {
    const file = fs.openSync('/etc/hostname', 'r')
    const [line] = await restore({ PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' }, [file])
    fs.closeSync(file)
    assert.equal(line.code, 'ERR_PRIVSEP_NOT_SOCKET')
  })

  test('a socket where a file is declared: ERR_PRIVSEP_NOT_FILE', async () => {
    const [line] = await restore({ PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=file:/etc/key' }, [tcp.fd])
    assert.equal(line.code, 'ERR_PRIVSEP_NOT_FILE')
  })

  test('a datagram socket declared as a stream: ERR_PRIVSEP_SOCKET_TYPE', async () => {
    const udp = immediate.listen('udp4', '127.0.0.1:0')
    const [line] = await restore({ PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' }, [udp.fd])
    assert.equal(line.code, 'ERR_PRIVSEP_SOCKET_TYPE')
  })

  test('a socket that is not listening: ERR_PRIVSEP_NOT_LISTENING', async () => {
    const server = net.createServer().listen(0, '127.0.0.1')
    await new Promise((resolve) => server.on('listening', resolve))
    const client = net.connect(server.address().port, '127.0.0.1')
    await new Promise((resolve) => client.on('connect', resolve))
    const [line] = await restore({ PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.1%3A0' }, [client])
    client.destroy()
    server.close()
    assert.equal(line.code, 'ERR_PRIVSEP_NOT_LISTENING')
  })

  test('a socket of another family: ERR_PRIVSEP_SOCKET_FAMILY', async () => {
    const [line] = await restore({ PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp6:[%3A%3A1]%3A0' }, [tcp.fd])
    assert.equal(line.code, 'ERR_PRIVSEP_SOCKET_FAMILY')
  })

  test('a socket bound to another address: ERR_PRIVSEP_SOCKET_ADDRESS', async () => {
    const [line] = await restore({ PRIVSEP_FDS: '1', PRIVSEP_FILES: '3=tcp4:127.0.0.2%3A0' }, [tcp.fd])
    assert.equal(line.code, 'ERR_PRIVSEP_SOCKET_ADDRESS')
    assert.match(line.message, /127\.0\.0\.1:\d+/)
  })

  test('what the parent did not pass: ERR_PRIVSEP_NOT_PASSED; the variables are gone after restore', async () => {
    const file = fs.openSync(key.file, 'r')
    const lines = await restore(
      { PRIVSEP_FDS: '2', PRIVSEP_FILES: `3=tcp4:127.0.0.1%3A0,4=file:${percentEncode(key.file)}` },
      [tcp.fd, file],
      [['restore'], ['env'], ['listen', 'tcp4', '127.0.0.1:0'], ['listenerFd', 0], ['listen', 'tcp4', '127.0.0.1:1'], ['open', key.file], ['open', key.file], ['open', '/etc/hostname']])
    fs.closeSync(file)
    assert.deepEqual(lines.map((l) => l.code ?? 'ok'),
      ['ok', 'ok', 'ok', 'ok', 'ERR_PRIVSEP_NOT_PASSED', 'ok', 'ERR_PRIVSEP_NOT_PASSED', 'ERR_PRIVSEP_NOT_PASSED'])
    assert.deepEqual(lines[1].ok, [])
    assert.deepEqual([lines[3].ok, lines[5].ok], [3, 4])
  })
})
