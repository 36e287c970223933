// Builds what is missing or stale: the addon and the monitor (each its own `cargo build`), copied
// into the package root as privsep.<platform>.node and privsep-monitor.<platform>, and the
// TypeScript (into dist/: one bundled ES module and the declarations). Not `napi build`: it
// only names the file here, and without napi-derive it printed an unrelated warning on every
// build. <platform> is @napi-rs/cli's name for rustc's host triple, as napi build names it.
import { chmodSync, copyFileSync, existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnSync } from 'node:child_process'
import { parseTriple } from '@napi-rs/cli'
import { aptInstall, cargoSourceArgs, run } from './cargo.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = (name) => join(root, 'node_modules', '.bin', name)

/** Newest modification time under `paths` (files or folders), 0 if none exist. */
function newest (paths) {
  let time = 0
  for (const path of paths) {
    if (!existsSync(path)) continue
    const stat = statSync(path)
    if (stat.isDirectory()) {
      time = Math.max(time, newest(readdirSync(path).map((name) => join(path, name))))
    } else {
      time = Math.max(time, stat.mtimeMs)
    }
  }
  return time
}

/** The addon and the monitor for this machine; returns the platform part of their names. */
export function buildAddon () {
  if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) aptInstall(['cargo', 'rustc'], 'no Rust toolchain (cargo) on PATH')
  const host = spawnSync('rustc', ['-vV'], { encoding: 'utf8' }).stdout?.match(/^host: (\S+)$/m)?.[1]
  if (!host) {
    console.error('privsep build: `rustc -vV` names no host triple')
    process.exit(1)
  }
  const triple = parseTriple(host).platformArchABI
  // The monitor alone, as pack.mjs builds it for publishing: one build of both would unify
  // privsep-wire's features, and the monitor is built without the Node side's halves (`node`).
  for (const crate of ['privsep-monitor', 'privsep-addon']) run('cargo', ['build', '--release', '--locked', '-p', crate, ...cargoSourceArgs()], { cwd: root })
  const library = { darwin: 'libprivsep.dylib', win32: 'privsep.dll' }[process.platform] ?? 'libprivsep.so'
  place(join(root, 'target', 'release', library), `privsep.${triple}.node`)
  place(join(root, 'target', 'release', 'privsep-monitor'), `privsep-monitor.${triple}`)
  return triple
}

/** Copies `from` to `name` at the package root by a rename: a process using the old file keeps it intact. */
function place (from, name) {
  copyFileSync(from, join(root, `.${name}.tmp`))
  renameSync(join(root, `.${name}.tmp`), join(root, name))
}

const inputs = (...names) => names.map((name) => join(root, name))
const localBinaries = () => readdirSync(root).filter((name) => /^privsep\..*\.node$/.test(name) && !name.includes('win32'))
const addons = localBinaries()
const monitors = addons.map((name) => join(root, name.replace(/^privsep\.(.*)\.node$/, 'privsep-monitor.$1')))
const addonTime = addons.length && monitors.every(existsSync)
  ? Math.min(...[...addons.map((name) => join(root, name)), ...monitors].map((file) => statSync(file).mtimeMs))
  : 0
if (addonTime < newest(inputs('crates', 'Cargo.toml', 'Cargo.lock'))) buildAddon()
if (newest(inputs('dist')) < newest(inputs('src', 'tsconfig.json', 'scripts/build.mjs'))) buildTypeScript()

/**
 * tsc checks the types and writes the declarations; esbuild writes the JavaScript as one ES
 * module (src/index.ts says why: start-up time).
 */
function buildTypeScript () {
  rmSync(join(root, 'dist'), { recursive: true, force: true })
  run(bin('tsc'), ['-p', 'tsconfig.json'], { cwd: root })
  run(bin('esbuild'), ['src/index.ts', '--bundle', '--format=esm', '--platform=node', '--target=node20',
    '--outfile=dist/index.js', '--log-level=warning'], { cwd: root })
  run(bin('esbuild'), ['src/cli.ts', '--bundle', '--format=esm', '--platform=node', '--target=node20',
    '--outfile=dist/cli.js', '--log-level=warning', '--banner:js=#!/usr/bin/env node'], { cwd: root })
  chmodSync(join(root, 'dist', 'cli.js'), 0o755)
}
