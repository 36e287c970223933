// The root side's size: the Rust a reviewer must read to know what runs as root after the
// hand-off. That is every crate privsep-monitor is built from (its path dependencies, found
// with `cargo metadata`), counted per crate in lines of code: not blank, not a comment, not a
// test (a `#[cfg(test)]` module, inline or in its own file; `tests/`). `npm run root-size`;
// docs/SECURITY.md quotes it.
//
//   node scripts/root-size.mjs [--max N]   exits 1 when the total is above N
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cargoSourceArgs } from './cargo.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The lines of `text` that are code: not blank, not only a comment, not in a `#[cfg(test)]` item. */
export function countLines (text) {
  let count = 0
  let skipping = false
  let depth = 0
  let pending = false
  for (const line of text.split('\n')) {
    const code = line.trim()
    if (!skipping && code === '#[cfg(test)]') {
      pending = true
      continue
    }
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
    if (code !== '' && !code.startsWith('//')) count++
  }
  return count
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
  console.log('the root side: the crates privsep-monitor is built from, lines of code outside tests')
  for (const [name, src] of monitorCrates()) {
    const all = rustFiles(src)
    const tests = new Set(all.flatMap((file) => testModules(readFileSync(file, 'utf8')).map((m) => join(dirname(file), `${m}.rs`))))
    const files = all.filter((file) => !tests.has(file)).map((file) => [relative(src, file), countLines(readFileSync(file, 'utf8'))])
    const lines = files.reduce((sum, [, n]) => sum + n, 0)
    total += lines
    console.log(`  ${name.padEnd(18)} ${String(lines).padStart(5)}   ${files.map(([f, n]) => `${f} ${n}`).join(', ')}`)
  }
  console.log(`  ${'total'.padEnd(18)} ${String(total).padStart(5)}`)
  if (total > max) {
    console.error(`the root side is ${total} lines, above ${max}`)
    process.exitCode = 1
  }
}
