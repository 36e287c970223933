// Packs what gets published: the main package (its package.json gains `optionalDependencies`
// on every platform package, as at publish time) and the per-platform packages in npm/.
// The repository's package.json does not list them: `npm ci` would fail on packages that are
// not yet published. Used by the publish job, by __test__/pack.test.mjs and from the command
// line: `node scripts/pack.mjs [--out DIR] [--sync]` (--sync writes the main version into npm/*);
// `--local [--out DIR]` packs the main package and this machine's platform package from the
// checkout's build (`npm run pack:local`, into packed/).
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseTriple } from '@napi-rs/cli'

export const root = fileURLToPath(new URL('..', import.meta.url))

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))
export const mainManifest = () => readJson(join(root, 'package.json'))

/**
 * One entry per napi target: its npm/ folder, package name, addon file name and, except on
 * Windows (which has no monitor), the monitor executable's file name.
 */
export function platforms (manifest = mainManifest()) {
  const { binaryName, targets } = manifest.napi
  return targets.map((target) => {
    const { platformArchABI, platform, arch, abi } = parseTriple(target)
    return {
      target,
      platformArchABI,
      platform,
      arch,
      abi,
      dir: join(root, 'npm', platformArchABI),
      packageName: `${manifest.name}-${platformArchABI}`,
      binary: `${binaryName}.${platformArchABI}.node`,
      monitor: platform === 'win32' ? undefined : `${binaryName}-monitor.${platformArchABI}`
    }
  })
}

/** The main package.json as published: with optionalDependencies on the platform packages. */
export function publishManifest (manifest = mainManifest()) {
  const optionalDependencies = {}
  for (const p of platforms(manifest)) optionalDependencies[p.packageName] = manifest.version
  return { ...manifest, optionalDependencies }
}

function npm (args, options) {
  // On Windows npm is npm.cmd, which only a shell runs.
  const result = spawnSync('npm', args, { encoding: 'utf8', shell: process.platform === 'win32', ...options })
  if (result.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${result.status}):\n${result.stderr}`)
  return result.stdout
}

/** `npm pack` of `dir` into `out`; returns the tarball's path. */
function pack (dir, out) {
  const [info] = JSON.parse(npm(['pack', '--json', '--pack-destination', out], { cwd: dir }))
  return join(out, info.filename)
}

/**
 * Packs the main package into `out`. The files are the ones `npm pack` picks from the
 * repository (so the `files` field is what is tested), the manifest is `publishManifest()`.
 */
export function packMain (out) {
  const [listing] = JSON.parse(npm(['pack', '--dry-run', '--json'], { cwd: root }))
  const stage = mkdtempSync(join(tmpdir(), 'privsep-pack-'))
  try {
    for (const { path } of listing.files) {
      if (path === 'package.json') continue
      mkdirSync(dirname(join(stage, path)), { recursive: true })
      copyFileSync(join(root, path), join(stage, path))
    }
    writeFileSync(join(stage, 'package.json'), JSON.stringify(publishManifest(), null, 2) + '\n')
    return pack(stage, out)
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
}

/**
 * Packs the platform package for `platformArchABI` (e.g. `linux-x64-gnu`) into `out`. With
 * `binary` (and `monitor`), copies that built addon (and monitor) into its npm/ folder first.
 * Refuses a folder whose version is not the main package's or (its prepack) that lacks a file
 * its `files` lists.
 */
export function packPlatform (platformArchABI, out, binary, monitor) {
  const p = platforms().find((entry) => entry.platformArchABI === platformArchABI)
  if (!p) throw new Error(`${platformArchABI} is not a napi target in package.json`)
  const version = readJson(join(p.dir, 'package.json')).version
  if (version !== mainManifest().version) {
    throw new Error(`npm/${platformArchABI} has version ${version}, the main package ${mainManifest().version}: run node scripts/pack.mjs --sync`)
  }
  if (binary) copyFileSync(binary, join(p.dir, p.binary))
  if (monitor && p.monitor) {
    copyFileSync(monitor, join(p.dir, p.monitor))
    chmodSync(join(p.dir, p.monitor), 0o755)
  }
  return pack(p.dir, out) // its prepack (scripts/check-files.mjs) refuses a missing file
}

/**
 * Builds the monitor for a Rust `target` (with the cargo on PATH) into the package root as
 * privsep-monitor.<platform>, where the loader looks for a local build and the CI workflow
 * picks it up beside the addon.
 */
export function buildMonitor (target) {
  const p = platforms().find((entry) => entry.target === target)
  if (!p?.monitor) throw new Error(`${target}: no monitor is built for this target`)
  const result = spawnSync('cargo', ['build', '--release', '--locked', '-p', 'privsep-monitor', '--target', target], { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) throw new Error(`cargo build of privsep-monitor for ${target} failed`)
  copyFileSync(join(root, 'target', target, 'release', 'privsep-monitor'), join(root, p.monitor))
  chmodSync(join(root, p.monitor), 0o755)
}

/** Copies every monitor found under `dir` (downloaded artifacts) into its npm/ folder. */
function collectMonitors (dir) {
  for (const p of platforms()) {
    if (!p.monitor) continue
    const found = readdirSync(dir, { recursive: true }).find((path) => String(path).endsWith(p.monitor))
    if (found === undefined) continue
    copyFileSync(join(dir, String(found)), join(p.dir, p.monitor))
    chmodSync(join(p.dir, p.monitor), 0o755)
  }
}

/** Writes the main package's version into every npm/ package.json. */
export function syncVersions () {
  const { version } = mainManifest()
  for (const p of platforms()) {
    const path = join(p.dir, 'package.json')
    const manifest = readJson(path)
    if (manifest.version === version) continue
    manifest.version = version
    writeFileSync(path, JSON.stringify(manifest, null, 2) + '\n')
    console.log(`npm/${p.platformArchABI}: version ${version}`)
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const option = (name) => args.includes(name) ? args[args.indexOf(name) + 1] : undefined
  if (args.includes('--local')) {
    // What a user installs, from this checkout's build: the main package and this machine's
    // platform package, side by side (`npm run pack:local`).
    const out = resolve(option('--out') ?? 'packed')
    mkdirSync(out, { recursive: true })
    const built = readdirSync(root).filter((name) => /^privsep\.[\w-]+\.node$/.test(name))
    if (built.length !== 1) throw new Error(`expected one local build (privsep.<platform>.node) in ${root}, found ${built.join(', ') || 'none'}: npm run build`)
    const triple = built[0].slice('privsep.'.length, -'.node'.length)
    const platform = packPlatform(triple, out, join(root, `privsep.${triple}.node`), join(root, `privsep-monitor.${triple}`))
    const main = packMain(out)
    console.log(`packed:\n  ${main}\n  ${platform}\ninstall both in your project:\n  npm install ${main} ${platform}`)
  } else if (args.includes('--sync')) {
    syncVersions()
  } else if (option('--monitor')) {
    buildMonitor(option('--monitor'))
  } else {
    const monitors = option('--monitors')
    if (monitors) collectMonitors(resolve(monitors))
    const at = args.indexOf('--out')
    const out = resolve(at >= 0 ? args[at + 1] : '.')
    mkdirSync(out, { recursive: true })
    for (const p of platforms()) {
      if (existsSync(join(p.dir, p.binary))) console.log(packPlatform(p.platformArchABI, out))
      else console.error(`skipped npm/${p.platformArchABI}: no ${p.binary}`)
    }
    console.log(packMain(out))
  }
}
