// `npm run fuzz [-- SEED]`: every parser's properties at scale. The node:test properties
// (__test__/parsers.test.mjs) and the Rust randomized loops (cargo test fuzz, release build)
// each run PRIVSEP_FUZZ_CASES cases per property (1,000,000 unless set) from one seed:
// the argument, else PRIVSEP_FUZZ_SEED, else the clock. The count and seed are printed first
// and last; a failure prints the counterexample, and the same seed repeats the run.
import { fileURLToPath } from 'node:url'
import { cargoSourceArgs, run } from './cargo.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const cases = process.env.PRIVSEP_FUZZ_CASES ?? '1000000'
const seed = process.argv[2] ?? process.env.PRIVSEP_FUZZ_SEED ?? String(Date.now() % 2 ** 31)
if (!/^[0-9]+$/.test(seed) || !/^[1-9][0-9]*$/.test(cases)) {
  console.error(`fuzz: the seed (${seed}) and PRIVSEP_FUZZ_CASES (${cases}) are decimal numbers`)
  process.exit(2)
}
const env = { ...process.env, PRIVSEP_FUZZ_CASES: cases, PRIVSEP_FUZZ_SEED: seed }
console.log(`fuzz: ${cases} cases per property, seed ${seed}`)
run('cargo', ['test', '--release', '-p', 'privsep-wire', '-p', 'privsep-core', '-p', 'privsep-addon', '--lib', ...cargoSourceArgs(), 'fuzz', '--', '--nocapture'], { cwd: root, env })
run(process.execPath, ['--test', '--test-force-exit', '__test__/parsers.test.mjs'], { cwd: root, env })
console.log(`fuzz: done, ${cases} cases per property, seed ${seed}`)
