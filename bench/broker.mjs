// Broker benchmark: round-trip time of requestFile in a privsep child (the monitor opens a
// root-only file and sends the descriptor back) against the child opening a file it may read
// itself, in the same process, interleaved round by round. Prints the median and p99 of each
// one at a time, descriptors per second one at a time and with 32 requests in flight, and
// broker/direct ratios with 95% intervals over the rounds.
//
// Usage (as root, after `npm run build`): node bench/broker.mjs [rounds] [requests per round]
//   defaults 20 and 1000
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, ratio } from './stats.mjs'

const rounds = Number(process.argv[2] ?? 20)
const perRound = Number(process.argv[3] ?? 1000)
if (process.getuid?.() !== 0) {
  console.error('bench/broker.mjs must run as root: the program drops to nobody and asks its monitor for a root-only file')
  process.exit(1)
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privsep-bench-broker-'))
fs.chmodSync(dir, 0o755)
const rootOnly = path.join(dir, 'key.pem')
const readable = path.join(dir, 'readable.pem')
fs.writeFileSync(rootOnly, 'k'.repeat(256), { mode: 0o600 })
fs.writeFileSync(readable, 'k'.repeat(256), { mode: 0o644 })
try {
  const run = spawnSync(process.execPath, [fileURLToPath(new URL('broker/app.mjs', import.meta.url)), rootOnly, readable, String(rounds), String(perRound)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (run.status !== 0) throw new Error(`the program failed (${run.status ?? run.signal})`)
  const result = JSON.parse(run.stdout.trim().split('\n').at(-1))
  console.log(`broker: requestFile vs opening directly in the child, ${rounds} rounds of ${perRound}, interleaved`)
  console.log(`node ${process.version}, ${os.cpus().length} cpus`)
  console.log('way        median µs   p99 µs   per second')
  for (const name of ['broker', 'direct']) {
    const r = result[name]
    console.log(`${name.padEnd(9)} ${median(r.median).toFixed(1).padStart(9)} ${median(r.p99).toFixed(1).padStart(8)} ${median(r.perSecond).toFixed(0).padStart(12)}`)
  }
  console.log(`overlapping (32 in flight): ${median(result.overlapping.perSecond).toFixed(0)} per second`)
  console.log('\nratios broker/direct (95% interval by resampling rounds)')
  console.log(`  median: ${ratio(result.broker.median, result.direct.median).text}`)
  console.log(`  p99:    ${ratio(result.broker.p99, result.direct.p99).text}`)
  const p99 = median(result.broker.p99)
  const perSecond = median(result.overlapping.perSecond)
  console.log(`\ntarget: p99 at most 200 µs and at least 20,000 descriptors per second: ${p99 <= 200 && perSecond >= 20000 ? 'met' : 'NOT met'} (p99 ${p99.toFixed(1)} µs, ${perSecond.toFixed(0)}/s)`)
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
