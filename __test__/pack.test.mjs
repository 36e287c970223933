// What users install: the npm/ platform packages are in step with the main package, and the
// packed main + linux-x64-gnu tarballs install without cargo, into a fresh directory
// where the whole root -> nobody flow runs for real.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { mainManifest, packMain, packPlatform, platforms, publishManifest, root } from '../scripts/pack.mjs'
import { freePorts, importSource } from './helpers.mjs'

const { publishedPlatforms, platformTriple } = await importSource('native')
// This machine's platform package (linux-x64-gnu here; the macOS CI job runs this file too).
const triple = platformTriple()
const isRoot = process.getuid?.() === 0
// The installed package's own dependencies (pino, prom-client) come from the npm registry: a
// machine that cannot reach it skips the install, saying so, rather than wait on it.
const registry = spawnSync('npm', ['view', 'pino', 'version', '--prefer-online'], { encoding: 'utf8', timeout: 30_000 })
const noRegistry = registry.status === 0 ? undefined
  : `the npm registry is unreachable (npm view pino: ${registry.error?.code ?? registry.stderr.trim().split('\n').pop()}): installing the tarballs needs pino and prom-client from it`

test('every napi target has an npm/ package in step with the main package', () => {
  const main = mainManifest()
  const required = ['x86_64-unknown-linux-gnu', 'x86_64-unknown-linux-musl', 'aarch64-unknown-linux-gnu',
    'x86_64-apple-darwin', 'aarch64-apple-darwin', 'x86_64-pc-windows-msvc']
  for (const target of required) assert.ok(main.napi.targets.includes(target), `napi.targets lacks ${target}`)
  for (const p of platforms()) {
    const manifest = JSON.parse(readFileSync(join(p.dir, 'package.json'), 'utf8'))
    assert.equal(manifest.name, p.packageName)
    assert.equal(manifest.version, main.version, `npm/${p.platformArchABI} version`)
    assert.deepEqual(manifest.os, [p.platform])
    assert.deepEqual(manifest.cpu, [p.arch])
    assert.equal(manifest.main, p.binary)
    assert.deepEqual(manifest.files, p.monitor ? [p.binary, p.monitor] : [p.binary])
    if (p.platform === 'linux') assert.deepEqual(manifest.libc, [p.abi === 'musl' ? 'musl' : 'glibc'])
    else assert.equal(manifest.libc, undefined, `npm/${p.platformArchABI}: npm on ${p.platform} rejects a libc field`)
    assert.equal(publishManifest().optionalDependencies[p.packageName], main.version)
  }
  assert.deepEqual(publishedPlatforms, platforms().map((p) => p.platformArchABI), 'src/native.ts publishedPlatforms follows napi.targets')
})

test('the published main package carries what the runtime needs', () => {
  const { files } = mainManifest()
  assert.ok(files.some((entry) => entry.replace(/\/$/, '') === 'dist'), 'files must include dist/')
  // The package's entry points must exist in what npm packs.
  const listing = JSON.parse(spawnSync('npm', ['pack', '--dry-run', '--json'], { cwd: root, encoding: 'utf8', timeout: 120_000 }).stdout)[0]
  const packed = new Set(listing.files.map((f) => f.path))
  for (const entry of [mainManifest().main, mainManifest().types]) assert.ok(packed.has(entry), `${entry} is not packed`)
  assert.ok(![...packed].some((path) => path.endsWith('.node') || path.includes('privsep-monitor')), 'the main package must not carry a binary')
})

test('npm pack of a platform package without a file its "files" lists fails and names the file', () => {
  // Each npm/ package, copied with its prepack script into the same layout (npm/<dir>,
  // scripts/): a missing binary stops the pack with a message; so does any other listed file.
  const tmp = mkdtempSync(join(tmpdir(), 'privsep-prepack-'))
  try {
    mkdirSync(join(tmp, 'scripts'))
    copyFileSync(join(root, 'scripts', 'check-files.mjs'), join(tmp, 'scripts', 'check-files.mjs'))
    const pack = (dir) => spawnSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: dir, encoding: 'utf8', timeout: 120_000 })
    for (const p of platforms()) {
      const dir = join(tmp, 'npm', p.platformArchABI)
      mkdirSync(dir, { recursive: true })
      const manifest = JSON.parse(readFileSync(join(p.dir, 'package.json'), 'utf8'))
      assert.equal(manifest.scripts?.prepack, 'node ../../scripts/check-files.mjs', `npm/${p.platformArchABI} checks its files`)
      const files = [...manifest.files, 'second-binary']
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...manifest, files }))
      const without = pack(dir)
      assert.notEqual(without.status, 0, `npm/${p.platformArchABI} packed without ${p.binary}`)
      assert.match(without.stderr, new RegExp(`${p.packageName}: not packing: ${files.join(', ').replace(/\./g, '\\.')} are listed in "files" but missing`))
      for (const file of manifest.files) writeFileSync(join(dir, file), 'built')
      assert.match(pack(dir).stderr, /not packing: second-binary is listed/)
      writeFileSync(join(dir, 'second-binary'), 'built')
      const packed = pack(dir)
      assert.equal(packed.status, 0, packed.stderr)
      const listed = JSON.parse(packed.stdout)[0].files.map((f) => f.path).sort()
      assert.deepEqual(listed, [...files, 'package.json'].sort())
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
})

/** A directory holding only `node` and `npm`, to be the whole PATH: no cargo, no rustc. */
function toolchainFreeBin (dir) {
  const bin = join(dir, 'bin')
  mkdirSync(bin)
  symlinkSync(process.execPath, join(bin, 'node'))
  symlinkSync(realpathSync(spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim()), join(bin, 'npm'))
  return bin
}

const app = `
import { listen, openPrivileged, forkExecUnprivileged, restorePassedFiles, cleanupPassedFiles } from 'privsep'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'

const [port, keyPath] = process.argv.slice(2)
if (process.getuid() !== 0) restorePassedFiles()
const listener = listen('tcp', '127.0.0.1:' + port)
const keyFd = openPrivileged(keyPath)
if (process.getuid() === 0) await forkExecUnprivileged({ user: 'nobody' })
cleanupPassedFiles()
const key = fs.readFileSync(keyFd, 'utf8')
// The shared objects this process mapped: which .node file the loader really loaded.
const addons = process.report.getReport().sharedObjects.filter((path) => path.endsWith('.node'))
const server = net.createServer((socket) => {
  socket.end(JSON.stringify({ user: os.userInfo().username, uid: process.getuid(), key, addons }))
  server.close()
})
server.listen(listener, () => console.log('ready'))
`

describe('installed from the packed tarballs, without cargo', { skip: (!isRoot && 'needs root') || noRegistry }, () => {
  let dir, project, env

  before(() => {
    const addon = join(root, `privsep.${triple}.node`)
    assert.ok(existsSync(addon), `build first (npm run build): privsep.${triple}.node is missing`)
    // Not os.tmpdir(): on macOS that is a per-user folder nobody cannot enter.
    dir = mkdtempSync(join(existsSync('/tmp') ? '/tmp' : tmpdir(), 'privsep-install-'))
    chmodSync(dir, 0o755) // nobody must read the installed package
    const tarballs = join(dir, 'tarballs')
    mkdirSync(tarballs)
    const main = packMain(tarballs)
    const platform = packPlatform(triple, tarballs, addon, join(root, `privsep-monitor.${triple}`))

    env = { ...process.env, PATH: toolchainFreeBin(dir), npm_config_update_notifier: 'false' }
    for (const name of Object.keys(env)) if (/^(CARGO|RUSTC|RUSTUP)/.test(name)) delete env[name]
    const cargo = spawnSync('cargo', ['--version'], { env })
    assert.equal(cargo.error?.code, 'ENOENT', 'cargo must not be reachable in the install environment')

    project = join(dir, 'app')
    mkdirSync(project)
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
    // privsep and its platform package come from the tarballs (neither is on the registry).
    // pino and prom-client come from npm's cache where it can: npm 11 resolves dependencies
    // against full registry metadata, which `npm ci` does not cache, so not --offline.
    const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', main, platform],
      { cwd: project, env, encoding: 'utf8', timeout: 300_000 })
    assert.equal(install.error?.code, undefined, `npm install did not finish in 5 minutes (the registry?):\n${install.stderr}`)
    assert.equal(install.status, 0, `npm install failed:\n${install.stderr}`)
    assert.ok(existsSync(join(project, 'node_modules', 'privsep', 'dist', 'index.js')))
    assert.ok(!existsSync(join(project, 'node_modules', 'privsep', `privsep.${triple}.node`)), 'no local build in the installed package')
    const monitor = statSync(join(project, 'node_modules', `privsep-${triple}`, `privsep-monitor.${triple}`))
    assert.equal(monitor.mode & 0o777, 0o755, 'the installed monitor is executable and writable by root only')
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  test('a root parent serves a privileged port as nobody with a root-only key', async () => {
    const keyPath = join(dir, 'key.pem')
    const secret = `secret ${process.pid} ${Date.now()}\n`
    writeFileSync(keyPath, secret, { mode: 0o600 })
    writeFileSync(join(project, 'server.mjs'), app)
    const [port] = await freePorts(1, 600, 400)

    const server = spawn(process.execPath, ['server.mjs', String(port), keyPath], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    server.stderr.on('data', (chunk) => { stderr += chunk })
    const exited = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })))
    await new Promise((resolve, reject) => {
      server.stdout.on('data', (chunk) => { if (String(chunk).includes('ready')) resolve() })
      exited.then(({ code, signal }) => reject(new Error(`server ended (${code ?? signal}) before serving:\n${stderr}`)))
    })
    const answer = await new Promise((resolve, reject) => {
      let data = ''
      net.connect(port, '127.0.0.1').on('data', (chunk) => { data += chunk }).on('end', () => resolve(JSON.parse(data))).on('error', reject)
    })
    assert.equal(answer.user, 'nobody', 'the child serves as nobody')
    assert.notEqual(answer.uid, 0)
    assert.equal(answer.key, secret, 'the child read the root-only key through the passed fd')
    assert.deepEqual(answer.addons.map((path) => dirname(path)), [realpathSync(join(project, 'node_modules', `privsep-${triple}`))],
      'the addon came from the platform package')
    assert.deepEqual(await exited, { code: 0, signal: null }, `the root parent ends as its child did:\n${stderr}`)
  })

  test('without the platform package the loader names the platform and every path it tried', () => {
    rmSync(join(project, 'node_modules', `privsep-${triple}`), { recursive: true })
    const probe = "import { listen } from 'privsep'\n" +
      "try { listen('tcp', '127.0.0.1:0') } catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })) }\n"
    writeFileSync(join(project, 'probe.mjs'), probe)
    const result = spawnSync(process.execPath, ['probe.mjs'], { cwd: project, env, encoding: 'utf8' })
    assert.equal(result.status, 0, result.stderr)
    const { code, message } = JSON.parse(result.stdout)
    assert.equal(code, 'ERR_PRIVSEP_NATIVE_LOAD')
    assert.ok(message.includes(`for ${triple}`), message)
    const local = join(realpathSync(join(project, 'node_modules', 'privsep')), `privsep.${triple}.node`)
    assert.ok(message.includes(`${local}: no such file (no local build)`), message)
    assert.ok(message.includes(`privsep-${triple}: package not installed`), message)
    // Installed from a local tarball: the hint is the platform tarball, not a reinstall.
    assert.match(message, /installed from a local tarball \(file:.*privsep-0\.1\.0\.tgz\).*npm run pack:local/, message)
  })
})
