// Builds what is missing or stale: the addon (with @napi-rs/cli, into the package root as
// privsep.<platform>.node), the monitor beside it (privsep-monitor.<platform>) and the
// TypeScript (into dist/: one bundled ES module and the declarations).
import { copyFileSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnSync } from 'node:child_process'
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
  run(bin('napi'), ['build', '--platform', '--release', '--manifest-path', 'crates/addon/Cargo.toml',
    '--package-json-path', 'package.json', '-o', '.', '--', ...cargoSourceArgs()], { cwd: root })
  run('cargo', ['build', '--release', '--locked', '-p', 'privsep-monitor', ...cargoSourceArgs()], { cwd: root })
  const newest = localBinaries().sort((a, b) => statSync(join(root, b)).mtimeMs - statSync(join(root, a)).mtimeMs)[0]
  const triple = newest.slice('privsep.'.length, -'.node'.length)
  copyFileSync(join(root, 'target', 'release', 'privsep-monitor'), join(root, `privsep-monitor.${triple}`))
  return triple
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
}
