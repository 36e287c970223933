// `npm test`: the Rust core's tests, then the node:test suite (one file at a time: the
// tests fork real children and bind real ports). --test-force-exit ends a file once its tests
// are done: a test that fails before closing its servers and sockets is reported as failed,
// instead of keeping its file's process, and with it the whole run, alive.
// The files are listed here, by name: a directory argument (`__test__/`) works on Node 20 but
// is "Cannot find module" on Node 22 and 24, and Node 20 does not expand a glob. The CI
// workflow runs `node scripts/test.mjs --node-only` (__test__/ci-workflow.test.mjs checks it).
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cargoSourceArgs, run } from './cargo.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The node --test arguments: options, then every __test__/*.test.mjs. */
export function nodeTestArgs () {
  const files = readdirSync(join(root, '__test__')).filter((name) => name.endsWith('.test.mjs')).sort()
  return ['--test', '--test-concurrency=1', '--test-force-exit', ...files.map((name) => join('__test__', name))]
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!process.argv.includes('--node-only')) run('cargo', ['test', '--workspace', ...cargoSourceArgs()], { cwd: root })
  // The adversarial tests count what they tried (__test__/helpers.mjs, report()); the counts
  // must be the ones docs/SECURITY.md publishes.
  const report = join(mkdtempSync(join(tmpdir(), 'privsep-report-')), 'report.jsonl')
  writeFileSync(report, '')
  run(process.execPath, nodeTestArgs(), { cwd: root, env: { ...process.env, SECURITY_REPORT: report } })
  run(process.execPath, [join(root, 'scripts', 'security-report.mjs'), '--check', report], { cwd: root })
  rmSync(dirname(report), { recursive: true })
}
