// The program bench/broker.mjs runs: as root it opens a root-only file, then, as nobody, it
// times requestFile against opening a nobody-readable copy directly, round by round, and prints
// one JSON line of per-round numbers.
import { openPrivileged, forkExecUnprivileged, restorePassedFiles, cleanupPassedFiles, requestFile } from 'privsep'
import fs from 'node:fs'

const [rootOnly, readable, rounds, perRound] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])]
if (process.getuid() !== 0) restorePassedFiles()
fs.closeSync(openPrivileged(rootOnly))
if (process.getuid() === 0) await forkExecUnprivileged({ user: 'nobody' })
cleanupPassedFiles()

const now = () => Number(process.hrtime.bigint()) / 1e3 // µs
const quantile = (list, q) => { const s = [...list].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))] }
const result = { broker: { median: [], p99: [], perSecond: [] }, direct: { median: [], p99: [], perSecond: [] }, overlapping: { perSecond: [] } }
const ways = {
  broker: async () => fs.closeSync(await requestFile(rootOnly)),
  direct: async () => fs.closeSync(fs.openSync(readable, 'r'))
}
for (let i = 0; i < 200; i++) for (const way of Object.values(ways)) await way() // warm-up
for (let round = 0; round < rounds; round++) {
  for (const [name, way] of Object.entries(ways)) {
    const times = []
    const start = now()
    for (let i = 0; i < perRound; i++) {
      const t = now()
      await way()
      times.push(now() - t)
    }
    result[name].median.push(quantile(times, 0.5))
    result[name].p99.push(quantile(times, 0.99))
    result[name].perSecond.push(perRound / ((now() - start) / 1e6))
  }
  // Throughput with requests overlapping, 32 in flight (requestFile's most), as a server
  // reloading many keys at once would ask.
  const start = now()
  let sent = 0
  const worker = async () => { while (sent < perRound) { sent++; await ways.broker() } }
  await Promise.all(Array.from({ length: 32 }, worker))
  result.overlapping.perSecond.push(perRound / ((now() - start) / 1e6))
}
process.stdout.write(JSON.stringify(result) + '\n')
