// The program restricted.win.mjs runs, twice like any privsep program: elevated, it opens the
// key and hands off (holding an inheritable handle of a decoy, which it got at descriptor 3,
// that it never passes); as the restricted child it reports what it has as one JSON line on stdout. argv: key decoy mode [arg], where mode is
// `exit CODE` (the child exits with CODE), `hang` (the child waits until it is ended), `wait`
// (the parent uses exit: false and reports what it resolved with) or `unelevated` (the child
// starts a plain Node process, which tries to hand off itself).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import tty from 'node:tty'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { cleanupPassedFiles, forkExecUnprivileged, listen, openPrivileged, requestFile, restorePassedFiles } from 'privsep'

// The addon itself, for what the test reads back (the token, the open handles).
const addon = createRequire(import.meta.url)('privsep-win32-x64-msvc')
const [key, decoy, mode, arg] = process.argv.slice(2)
const child = process.env.PRIVSEP_PID !== undefined
// PRIVSEP_TEST_REPORT: each line goes to that file too (a run in a console of its own).
const line = (report) => {
  fs.writeSync(1, `${JSON.stringify(report)}\n`)
  if (process.env.PRIVSEP_TEST_REPORT) fs.appendFileSync(process.env.PRIVSEP_TEST_REPORT, `${JSON.stringify(report)}\n`)
}
const protocol = () => ['PRIVSEP_PID', 'PRIVSEP_FDS', 'PRIVSEP_FILES'].filter((name) => process.env[name] !== undefined)

restorePassedFiles()
const keyFd = openPrivileged(key)
const listener = listen('tcp', '127.0.0.1:0')
if (!child) {
  // Node makes what it inherited not inheritable at start: the decoy is made inheritable again,
  // as a native addon's handle could be. Only the explicit handle list keeps it from the child.
  const decoyHandle = addon.leakInheritable(3)
  const decoyHeld = addon.openHandles().some(([handle, name]) => handle === decoyHandle && name.toLowerCase().endsWith(path.basename(decoy).toLowerCase()))
  line({ role: 'parent', pid: process.pid, elevated: addon.processToken().elevated, decoyHeld, stdinIsConsole: tty.isatty(0) })
  const result = await forkExecUnprivileged({ user: os.userInfo().username, exit: mode !== 'wait' })
  line({ role: 'parent', result, env: protocol() })
  process.exit(0)
}

cleanupPassedFiles()
let keyByPath
try {
  fs.readFileSync(key)
  keyByPath = 'read'
} catch (err) {
  keyByPath = err.code
}
// W1 (issue 19): the console the child is attached to, opened by name rather than inherited.
let consoleInput
try {
  fs.closeSync(fs.openSync('CONIN$', 'r'))
  consoleInput = 'opened'
} catch (err) {
  consoleInput = err.code
}
const report = {
  role: 'child',
  pid: process.pid,
  ppid: process.ppid,
  keyFd,
  key: fs.readFileSync(keyFd, 'utf8'),
  keyByPath,
  listener: { host: listener.host, port: listener.port, fd: listener.fd },
  env: protocol(),
  stdinIsConsole: tty.isatty(0),
  consoleInput,
  broker: await requestFile(key).then(() => 'granted', (err) => err.code),
  token: addon.processToken(),
  handles: addon.openHandles()
}
if (mode === 'unelevated') {
  // A plain Node process started by the restricted child has its token: not elevated.
  const probe = "import('privsep').then(async (p) => { try { await p.forkExecUnprivileged({ user: require('os').userInfo().username }) } catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })) } })"
  const result = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' })
  report.unelevated = result.stdout.trim() === '' ? { stderr: result.stderr } : JSON.parse(result.stdout)
}
line(report)
if (mode === 'hang') setInterval(() => {}, 1000)
else process.exitCode = Number(arg ?? 0)
