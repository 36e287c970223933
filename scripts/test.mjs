// `npm test`: the Rust core's tests, then the node:test suite (one file at a time: the
// tests fork real children and bind real ports).
import { fileURLToPath } from 'node:url'
import { cargoSourceArgs, run } from './cargo.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
run('cargo', ['test', '--workspace', ...cargoSourceArgs()], { cwd: root })
run(process.execPath, ['--test', '--test-concurrency=1', '__test__/'], { cwd: root })
