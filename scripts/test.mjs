// `npm test`: the Rust core's tests, then the node:test suite (one file at a time: the
// tests fork real children and bind real ports). --test-force-exit ends a file once its tests
// are done: a test that fails before closing its servers and sockets is reported as failed,
// instead of keeping its file's process, and with it the whole run, alive.
import { fileURLToPath } from 'node:url'
import { cargoSourceArgs, run } from './cargo.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
run('cargo', ['test', '--workspace', ...cargoSourceArgs()], { cwd: root })
run(process.execPath, ['--test', '--test-concurrency=1', '--test-force-exit', '__test__/'], { cwd: root })
