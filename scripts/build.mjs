// Builds what is missing or stale: the addon (with @napi-rs/cli, into the package root as
// privsep.<platform>.node) and the TypeScript (into dist/: one bundled ES module and the
// declarations).
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs'
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

export function buildAddon () {
  if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) aptInstall(['cargo', 'rustc'], 'no Rust toolchain (cargo) on PATH')
  run(bin('napi'), ['build', '--platform', '--release', '--manifest-path', 'crates/addon/Cargo.toml',
    '--package-json-path', 'package.json', '-o', '.', '--', ...cargoSourceArgs()], { cwd: root })
}

const inputs = (...names) => names.map((name) => join(root, name))
const addons = readdirSync(root).filter((name) => /^privsep\..*\.node$/.test(name) && !name.includes('win32'))
const addonTime = addons.length ? Math.min(...addons.map((name) => statSync(join(root, name)).mtimeMs)) : 0
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
