// .github/workflows/ci.yml cannot run here; this checks it against package.json and npm/:
// every napi target has a build job and a platform package, the lint, MSRV, test and publish
// jobs do what the distribution issue asks. The workflow is parsed by the small YAML reader
// below, which knows the subset ci.yml uses and throws on anything else.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parseTriple } from '@napi-rs/cli'
import { mainManifest, root } from '../scripts/pack.mjs'
import { nodeTestArgs } from '../scripts/test.mjs'

/**
 * Reads the YAML subset ci.yml is written in: block mappings and sequences, `- key: value`
 * items, `|` literal blocks, flow sequences of scalars, quoted and plain scalars, comments.
 * Scalars are strings except integers, true/false and null. No anchors, tags, multi-documents or flow mappings.
 */
export function parseYaml (text) {
  const lines = []
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\s+$/, '')
    if (/^\s*(#|$)/.test(line)) lines.push({ blank: true, raw, number: index + 1 })
    else lines.push({ indent: line.match(/^ */)[0].length, text: line.trim(), raw, number: index + 1 })
  })
  let at = 0
  const fail = (line, why) => { throw new Error(`ci.yml line ${line.number}: ${why}: ${line.raw}`) }
  const skipBlank = () => { while (at < lines.length && lines[at].blank) at++ }

  function scalar (text, line) {
    const value = text.replace(/\s+#.*$/, '')
    if (/^'.*'$/.test(value)) return value.slice(1, -1).replace(/''/g, "'")
    if (/^".*"$/.test(value)) return JSON.parse(value)
    if (/^\[.*\]$/.test(value)) {
      const inner = value.slice(1, -1).trim()
      return inner === '' ? [] : inner.split(',').map((item) => scalar(item.trim(), line))
    }
    if (/^[&*!{>]|^\|[-+0-9]/.test(value)) fail(line, 'unsupported YAML')
    if (/^-?\d+$/.test(value)) return Number(value)
    if (/^(true|false)$/.test(value)) return value === 'true'
    if (/^(null|~)$/.test(value)) return null
    return value
  }

  function literal (indent) {
    const body = []
    // Inside the block a `#` line is text; a blank line belongs to it; anything at or left of
    // the key's column ends it.
    const inside = (line) => line.raw.trim() === '' || line.raw.match(/^ */)[0].length > indent
    while (at < lines.length && inside(lines[at])) body.push(lines[at++].raw)
    while (body.length && body[body.length - 1].trim() === '') body.pop()
    const strip = Math.min(...body.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length))
    return body.map((l) => l.slice(strip)).join('\n') + '\n'
  }

  /** The value after `key:` (or `-`) on `line`: inline, a literal block, or a nested block. */
  function valueAfter (rest, line, indent) {
    if (rest === '|') return literal(indent)
    if (rest !== '') return scalar(rest, line)
    skipBlank()
    if (at < lines.length && lines[at].indent > indent) return block(lines[at].indent)
    if (at < lines.length && lines[at].indent === indent && lines[at].text.startsWith('- ')) return block(indent)
    return null
  }

  function entry (text, line, indent, into) {
    const match = text.match(/^([^'"\s][^:]*?|'[^']*'|"[^"]*"):(?:\s+(.*))?$/)
    if (!match) fail(line, 'expected key: value')
    const key = scalar(match[1], line)
    if (Object.hasOwn(into, key)) fail(line, `duplicate key ${key}`)
    into[key] = valueAfter((match[2] ?? '').trim(), line, indent)
  }

  function block (indent) {
    skipBlank()
    const isSequence = lines[at].text.startsWith('- ') || lines[at].text === '-'
    const result = isSequence ? [] : {}
    while (true) {
      skipBlank()
      if (at >= lines.length || lines[at].indent < indent) return result
      const line = lines[at]
      if (line.indent > indent) fail(line, 'unexpected indentation')
      if (isSequence !== line.text.startsWith('- ')) fail(line, 'mixed sequence and mapping')
      at++
      if (!isSequence) {
        entry(line.text, line, indent, result)
        continue
      }
      const item = line.text.slice(2).trim()
      if (/^([^'"\s\[][^:]*|'[^']*'|"[^"]*"):(\s|$)/.test(item)) {
        // `- key: value` starts a mapping whose further keys sit two columns in.
        const mapping = {}
        const inner = indent + 2
        entry(item, line, inner, mapping)
        while (true) {
          skipBlank()
          if (at >= lines.length || lines[at].indent !== inner || lines[at].text.startsWith('- ')) break
          const next = lines[at++]
          entry(next.text, next, inner, mapping)
        }
        result.push(mapping)
      } else {
        result.push(valueAfter(item, line, indent))
      }
    }
  }

  const document = block(0)
  skipBlank()
  if (at < lines.length) fail(lines[at], 'unparsed')
  return document
}

const workflow = parseYaml(readFileSync(join(root, '.github', 'workflows', 'ci.yml'), 'utf8'))
const jobs = workflow.jobs
const steps = (job) => jobs[job].steps
const runs = (job) => steps(job).map((step) => step.run ?? '').join('\n')

test('the YAML reader reads what it claims and refuses what it does not know', () => {
  assert.deepEqual(parseYaml('a:\n  b: [1, x]\n  c: |\n    one\n    # two\n  # comment\nd:\n  - e: 1\n    f: \'g\'\n  - h\n'),
    { a: { b: [1, 'x'], c: 'one\n# two\n' }, d: [{ e: 1, f: 'g' }, 'h'] })
  assert.throws(() => parseYaml('a: &anchor 1\n'), /unsupported YAML/)
  assert.throws(() => parseYaml('a: 1\na: 2\n'), /duplicate key a/)
  assert.throws(() => parseYaml('a:\n  - b\n  c: 1\n'), /mixed sequence and mapping/)
})

test('every napi target has a build job and an npm/ folder', () => {
  const { targets } = mainManifest().napi
  const built = jobs.build.strategy.matrix.include.map((entry) => entry.target)
  assert.deepEqual([...built].sort(), [...targets].sort(), 'build matrix targets = package.json napi.targets')
  for (const target of targets) {
    const folder = join(root, 'npm', parseTriple(target).platformArchABI)
    assert.ok(existsSync(join(folder, 'package.json')), `no npm/ package for ${target} (${folder})`)
  }
  for (const entry of jobs.build.strategy.matrix.include) assert.ok(entry.host, `${entry.target} has no runner`)
  assert.equal(jobs.build['runs-on'], '${{ matrix.host }}')
  assert.match(runs('build'), /napi build --platform --release --target \$\{\{ matrix\.target \}\}/)
  const upload = steps('build').find((step) => String(step.uses).startsWith('actions/upload-artifact@'))
  assert.ok(upload, 'build uploads its binary')
  assert.match(upload.with.name, /\$\{\{ matrix\.target \}\}/)
  assert.equal(upload.with['if-no-files-found'], 'error')
})

test('lint runs rustfmt, clippy with -D warnings and tsc --noEmit', () => {
  const lint = runs('lint')
  assert.match(lint, /cargo fmt --all --check/)
  assert.match(lint, /cargo clippy .*-- -D warnings/)
  assert.match(lint, /tsc .*--noEmit/)
})

test('the MSRV job builds with the rust-version Cargo.toml promises, the Windows DLL too', () => {
  const rustVersion = readFileSync(join(root, 'Cargo.toml'), 'utf8').match(/rust-version\s*=\s*"([^"]+)"/)[1]
  const toolchain = steps('msrv').find((step) => String(step.uses).startsWith('dtolnay/rust-toolchain@'))
  assert.equal(toolchain.uses, `dtolnay/rust-toolchain@${rustVersion}`)
  assert.match(runs('msrv'), /--target x86_64-pc-windows-gnu/)
})

test('tests run on Linux (as root), macOS and Windows with Node 20, 22 and 24 on the built binaries', () => {
  const { matrix } = jobs.test.strategy
  for (const os of ['ubuntu', 'macos', 'windows']) assert.ok(matrix.os.some((name) => name.startsWith(os)), `no ${os} runner`)
  assert.deepEqual(matrix.node, [20, 22, 24])
  assert.equal(jobs.test.needs, 'build')
  assert.ok(steps('test').some((step) => String(step.uses).startsWith('actions/download-artifact@')))
  const setupNode = steps('test').find((step) => String(step.uses).startsWith('actions/setup-node@'))
  assert.equal(setupNode.with['node-version'], '${{ matrix.node }}')
  const linux = steps('test').find((step) => step.if === "runner.os == 'Linux'")
  // The command npm test runs: scripts/test.mjs, which lists every test file by name.
  const args = nodeTestArgs()
  for (const arg of args.filter((a) => !a.startsWith('--'))) assert.ok(statSync(join(root, arg)).isFile(), `${arg} is not a test file`)
  assert.ok(args.includes(join('__test__', 'ci-workflow.test.mjs')), 'the list holds this very file')
  assert.ok(linux.run.split('\n').some((line) => /^sudo /.test(line) && line.endsWith(' node scripts/test.mjs --node-only')),
    `the Linux step runs \`sudo ... node scripts/test.mjs --node-only\`:\n${linux.run}`)
  const windows = steps('test').find((step) => step.if === "runner.os == 'Windows'")
  assert.match(windows.run, /scripts\/windows\.mjs --native/)
})

test('a version tag publishes the platform packages, then the main package', () => {
  assert.deepEqual(workflow.on.push.tags, ['v*'])
  assert.match(jobs.publish.if, /startsWith\(github\.ref, 'refs\/tags\/v'\)/)
  for (const job of ['lint', 'msrv', 'test']) assert.ok(jobs.publish.needs.includes(job), `publish needs ${job}`)
  const publish = runs('publish')
  assert.match(publish, /napi artifacts --output-dir artifacts --npm-dir npm/)
  assert.match(publish, /node scripts\/pack\.mjs --out packages/)
  const script = steps('publish').find((step) => step.name === 'npm publish').run
  assert.ok(script.indexOf('npm publish "$tarball"') < script.lastIndexOf('npm publish "$main"'), 'platform packages go first')
})
