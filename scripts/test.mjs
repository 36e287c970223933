// `npm test`: the Rust core's tests, then the node:test suite (one file at a time: the
// tests fork real children and bind real ports). --test-force-exit ends a file once its tests
// are done: a test that fails before closing its servers and sockets is reported as failed,
// instead of keeping its file's process, and with it the whole run, alive.
// The files are named by a glob that node expands itself: a directory argument (`__test__/`)
// works on Node 20 but is "Cannot find module" on Node 22 and 24. The CI workflow runs the
// same arguments (__test__/ci-workflow.test.mjs checks that).
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cargoSourceArgs, run } from './cargo.mjs'

export const nodeTestArgs = ['--test', '--test-concurrency=1', '--test-force-exit', '__test__/*.test.mjs']

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('..', import.meta.url))
  run('cargo', ['test', '--workspace', ...cargoSourceArgs()], { cwd: root })
  run(process.execPath, nodeTestArgs, { cwd: root })
}
