// The root side's layout (issue 20): privsep-monitor is built from crates/monitor and the
// crate tree of crates/core only, and every function those crates count (scripts/root-size.mjs)
// is in the monitor's executable: nothing a reviewer of the root side reads is code that only
// the Node side, Windows or another system runs.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { countLines, monitorCrates } from '../scripts/root-size.mjs'

const root = new URL('../', import.meta.url).pathname
// Under sudo a rustup toolchain of another user answers nothing (the GitHub workflow's Linux job).
const noCargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0 && 'needs cargo on PATH'

test('the monitor is built from crates/monitor and crates/core (with its wire crate), nothing else of the workspace', { skip: noCargo }, () => {
  assert.deepEqual(monitorCrates().map(([name, src]) => [name, src.slice(root.length)]).sort(), [
    ['privsep-core', 'crates/core/src'],
    ['privsep-monitor', 'crates/monitor/src'],
    ['privsep-wire', 'crates/core/wire/src']
  ])
})

test('every function counted on the root side is in the monitor\'s executable (npm run root-size -- --unlinked)', { skip: noCargo }, () => {
  const run = spawnSync(process.execPath, [`${root}scripts/root-size.mjs`, '--unlinked'], { cwd: root, encoding: 'utf8', timeout: 300_000 })
  assert.equal(run.status, 0, run.stderr)
  assert.match(run.stdout, /^ {2}total +\d+$/m)
  const unlinked = run.stdout.slice(run.stdout.indexOf('functions counted above'))
  assert.match(unlinked, /does not contain: 0\n$/, unlinked)
})

test('the count leaves out tests, the Node side\'s halves and what this system does not compile', () => {
  const other = process.platform === 'linux' ? 'not(target_os = "linux")' : 'target_os = "linux"'
  const text = [
    '//! A module.',
    'pub fn root() -> u32 {',
    '    // a comment',
    '',
    '    1',
    '}',
    '#[cfg(any(test, feature = "node"))]',
    'pub fn node_side(x: &str) -> String {',
    '    format!("{}", "}")',
    '}',
    `#[cfg(${other})]`,
    '// the stub',
    'fn elsewhere() {}',
    '#[cfg(test)]',
    'mod tests {',
    '    fn t() { let _ = "{"; }',
    '}'
  ].join('\n')
  assert.equal(countLines(text), 3)
})
