// `npm run security-report`: runs the adversarial tests with SECURITY_REPORT set (each test
// appends its counts with report() from __test__/helpers.mjs) and writes the table at the end
// of docs/SECURITY.md, with the command and the date.
// `node scripts/security-report.mjs --check FILE`: compares the counts in FILE (a run's
// SECURITY_REPORT, which `npm test` collects) with the committed table; exits 1 if they differ.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const doc = path.join(root, 'docs', 'SECURITY.md')
/** The table's rows, in order, and the tests that feed each. */
export const kinds = ['bad inputs', 'hostile child attempts', 'path attacks', 'exhaustion cases', 'leak checks', 'signal storms', 'same user attacks', 'terminal reads', 'sandboxed child attempts']
export const adversarialTests = ['broker.test.mjs', 'core-errors.test.mjs', 'hardening.test.mjs', 'monitor.test.mjs', 'parsers.test.mjs', 'sandbox.test.mjs', 'stress.test.mjs']
const begin = '<!-- security-report: written by `npm run security-report`; npm test checks the counts -->'

/** Sums the JSON lines of a SECURITY_REPORT file per kind. */
export function tally (file) {
  const totals = new Map(kinds.map((kind) => [kind, { tried: 0, refused: 0, lost: 0 }]))
  for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const { kind, tried, refused, lost } = JSON.parse(line)
    const total = totals.get(kind)
    if (total === undefined) throw new Error(`security report: unknown kind ${JSON.stringify(kind)} (known: ${kinds.join(', ')})`)
    total.tried += tried
    total.refused += refused
    total.lost += lost
  }
  return totals
}

function table (totals, date) {
  const rows = [...totals].map(([kind, t]) => `| ${kind} | ${t.tried} | ${t.refused} | ${t.lost} |`)
  return [begin, '## Figures', '',
    `From \`npm run security-report\` (the adversarial tests: ${adversarialTests.map((t) => `\`${t}\``).join(', ')}), run on ${date}`,
    `with Node ${process.version} on ${os.platform()}-${os.arch()}. *Refused* counts what was refused or survived correctly; *lost`,
    '(must be 0)* what was not: a descriptor given, a crash, a request answered wrongly.', '',
    '| class | tried | refused or survived | lost |', '| --- | ---: | ---: | ---: |', ...rows, ''].join('\n')
}

/** The committed counts, per kind. */
function committed () {
  const text = fs.readFileSync(doc, 'utf8')
  const at = text.indexOf(begin)
  if (at < 0) throw new Error('docs/SECURITY.md has no security report: run npm run security-report')
  const counts = new Map()
  for (const match of text.slice(at).matchAll(/^\| ([a-z ]+) \| (\d+) \| (\d+) \| (\d+) \|$/gm)) {
    counts.set(match[1], { tried: Number(match[2]), refused: Number(match[3]), lost: Number(match[4]) })
  }
  return counts
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const check = process.argv.indexOf('--check')
  if (check >= 0) {
    const fresh = tally(process.argv[check + 1])
    const table = committed()
    const differ = kinds.filter((kind) => JSON.stringify(fresh.get(kind)) !== JSON.stringify(table.get(kind)))
    if (differ.length > 0) {
      for (const kind of differ) console.error(`security report: ${kind}: this run ${JSON.stringify(fresh.get(kind))}, docs/SECURITY.md ${JSON.stringify(table.get(kind))}`)
      console.error('the committed table is not what the tests count now: run npm run security-report and commit docs/SECURITY.md')
      process.exit(1)
    }
    console.log(`security report: the counts of docs/SECURITY.md match this run (${kinds.map((k) => `${k} ${fresh.get(k).tried}`).join(', ')})`)
  } else {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-report-')), 'report.jsonl')
    fs.writeFileSync(file, '')
    const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-force-exit', ...adversarialTests.map((t) => path.join('__test__', t)).filter((t) => fs.existsSync(path.join(root, t)))],
      { cwd: root, stdio: 'inherit', env: { ...process.env, SECURITY_REPORT: file } })
    if (run.status !== 0) {
      console.error('security report: a test failed; the table is left as it was')
      process.exit(1)
    }
    const totals = tally(file)
    const text = fs.readFileSync(doc, 'utf8')
    const at = text.indexOf(begin)
    fs.writeFileSync(doc, (at < 0 ? text.trimEnd() + '\n\n' : text.slice(0, at)) + table(totals, new Date().toISOString().slice(0, 10)))
    console.log(table(totals, 'today'))
    fs.rmSync(path.dirname(file), { recursive: true })
  }
}
