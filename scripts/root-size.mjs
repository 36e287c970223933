// The root side's size: the Rust a reviewer must read to know what runs as root after the
// hand-off. That is every crate privsep-monitor is built from (its path dependencies, found
// with `cargo metadata`), counted per crate in lines of code: not blank, not a comment, not a
// test (a `#[cfg(test)]` module, inline or in its own file; `tests/`), and not one of the Node
// side's halves of a wire format (an item under `#[cfg(any(test, feature = "node"))]`, which
// the monitor is built without), nor what this machine does not compile (an item under
// `#[cfg(not(target_os = "linux"))]` on Linux). `npm run root-size`; docs/SECURITY.md quotes it.
//
//   node scripts/root-size.mjs [--max N]   exits 1 when the total is above N
//   node scripts/root-size.mjs --unlinked  also builds the monitor (debug, target/root-size)
//     and lists each counted function its executable does not contain (by `nm`): code a
//     reviewer would read for nothing.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cargoSourceArgs } from './cargo.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/**
 * The attributes of what the monitor is built without: tests, the Node side's halves, and
 * what this machine's system does not compile (the non-Linux stubs on Linux).
 */
const notRoot = new Set(['#[cfg(test)]', '#[cfg(any(test, feature = "node"))]',
  process.platform === 'linux' ? '#[cfg(not(target_os = "linux"))]' : '#[cfg(target_os = "linux")]'])

/** The lines of `text` that are code: not blank, not only a comment, not in an item the monitor is built without. */
export function countLines (text) {
  return codeLines(text).length
}

/** Those lines, as [line number, text]. */
function codeLines (text) {
  const lines = []
  let skipping = false
  let depth = 0
  let pending = false
  for (const [at, line] of text.split('\n').entries()) {
    const code = line.trim()
    if (!skipping && notRoot.has(code)) {
      pending = true
      continue
    }
    if (pending && !skipping && (code === '' || code.startsWith('//'))) continue
    if (pending && !skipping) {
      // The item the attribute applies to: a module (skipped to its closing brace) or one line.
      pending = false
      if (/\{\s*$/.test(code)) {
        skipping = true
        depth = 0
      } else {
        continue
      }
    }
    if (skipping) {
      for (const c of code.replace(/"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])'|\/\/.*$/g, '')) {
        if (c === '{') depth++
        else if (c === '}') depth--
      }
      if (depth <= 0) skipping = false
      continue
    }
    if (code !== '' && !code.startsWith('//')) lines.push([at + 1, code])
  }
  return lines
}

/** The counted functions of `files` ([crate, src, file]) that the monitor's executable lacks. */
function unlinked (files) {
  const targetDir = join(root, 'target', 'root-size')
  const build = spawnSync('cargo', ['build', '-p', 'privsep-monitor', '--target-dir', targetDir, ...cargoSourceArgs()], { cwd: root, stdio: 'inherit' })
  if (build.status !== 0) throw new Error('cargo build of privsep-monitor failed')
  const symbols = spawnSync('nm', ['-C', join(targetDir, 'debug', 'privsep-monitor')], { encoding: 'utf8', maxBuffer: 256 << 20 }).stdout
  const found = []
  for (const [crate, src, file] of files) {
    // The module path: privsep_core::sys::channel for src/sys/unix/channel.rs.
    const path = [crate.replace(/-/g, '_'), ...relative(src, file).replace(/\.rs$/, '').split('/').filter((p) => !['lib', 'main', 'mod', 'unix'].includes(p))].join('::')
    for (const [at, code] of codeLines(readFileSync(file, 'utf8'))) {
      const name = code.match(/^(?:pub(?:\([^)]*\))? )?(?:const )?(?:unsafe )?fn (\w+)/)?.[1]
      if (name === undefined) continue
      // A function, a method, or a trait's method: `<path::Type as Trait>::name`.
      const linked = new RegExp(`${path}::(?:\\w+::)?${name}\\b|<${path}::\\w+ as [^>]+>::${name}\\b`)
      if (!linked.test(symbols)) found.push(`${relative(root, file)}:${at} ${name}`)
    }
  }
  return found
}

/** The modules `text` declares for tests only (`#[cfg(test)] mod name;`): files that are tests. */
function testModules (text) {
  // `#[cfg(test)]`, or `#[cfg(any(test, feature = "fuzz"))]`: a test helper other crates' tests use.
  return [...text.matchAll(/#\[cfg\((?:test|any\(test, feature = "fuzz"\))\)\]\s*(?:pub\s+)?mod\s+(\w+)\s*;/g)].map((m) => m[1])
}

function rustFiles (dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return rustFiles(path)
    return name.endsWith('.rs') ? [path] : []
  })
}

/** The workspace crates privsep-monitor is built from: [name, src folder]. */
export function monitorCrates () {
  // The monitor as built for this machine (Linux or macOS: Windows has no monitor), so a
  // dependency only Windows builds (privsep-windows) is not counted.
  const host = spawnSync('rustc', ['-vV'], { encoding: 'utf8' }).stdout?.match(/^host: (\S+)$/m)?.[1]
  if (host === undefined) throw new Error('`rustc -vV` names no host triple')
  const metadata = spawnSync('cargo', ['metadata', '--format-version', '1', '--filter-platform', host, ...cargoSourceArgs()], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (metadata.status !== 0) throw new Error(`cargo metadata failed:\n${metadata.stderr}`)
  const { packages, resolve: graph } = JSON.parse(metadata.stdout)
  const local = new Map(packages.filter((p) => p.source === null).map((p) => [p.id, p]))
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]))
  const start = [...local.values()].find((p) => p.name === 'privsep-monitor')
  const seen = new Set()
  const walk = (id) => {
    if (seen.has(id) || !local.has(id)) return
    seen.add(id)
    for (const dep of nodes.get(id).deps) {
      // Build and dev dependencies are not in the executable.
      if (dep.dep_kinds.some((k) => k.kind === null)) walk(dep.pkg)
    }
  }
  walk(start.id)
  return [...seen].map((id) => local.get(id)).map((p) => [p.name, join(dirname(p.manifest_path), 'src')])
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--max')
  const max = at >= 0 ? Number(process.argv[at + 1]) : Infinity
  let total = 0
  const counted = []
  console.log('the root side: the crates privsep-monitor is built from, lines of code outside tests')
  for (const [name, src] of monitorCrates()) {
    const all = rustFiles(src)
    const tests = new Set(all.flatMap((file) => testModules(readFileSync(file, 'utf8')).map((m) => join(dirname(file), `${m}.rs`))))
    const sources = all.filter((file) => !tests.has(file))
    counted.push(...sources.map((file) => [name, src, file]))
    const files = sources.map((file) => [relative(src, file), countLines(readFileSync(file, 'utf8'))])
    const lines = files.reduce((sum, [, n]) => sum + n, 0)
    total += lines
    console.log(`  ${name.padEnd(18)} ${String(lines).padStart(5)}   ${files.map(([f, n]) => `${f} ${n}`).join(', ')}`)
  }
  console.log(`  ${'total'.padEnd(18)} ${String(total).padStart(5)}`)
  if (process.argv.includes('--unlinked')) {
    const found = unlinked(counted)
    console.log(`functions counted above that the monitor's executable does not contain: ${found.length}`)
    for (const line of found) console.log(`  ${line}`)
  }
  if (total > max) {
    console.error(`the root side is ${total} lines, above ${max}`)
    process.exitCode = 1
  }
}
