// Startup benchmark: time from launching a server program to the first answered connection
// on a privileged port, for a plain root server, a hand-written child_process.spawn as nobody,
// Node's cluster as nobody, and privsep twice: imported from this checkout (its local build)
// and installed (node_modules/privsep plus the platform package, the loader's path for users).
// Variants run interleaved (rotating order each round) so machine noise hits all alike; prints
// medians, ratios, and a bootstrap confidence interval for each privsep/spawn ratio.
//
// Usage (as root, after `npm run build`):
//   node bench/startup.mjs [runs]          default 15 runs, or env STARTUP_RUNS
//   STARTUP_VARIANTS=spawn,privsep,installed node bench/startup.mjs   a subset
//   STARTUP_BASE=/path/to/other/checkout node bench/startup.mjs   adds variant "base": that
//     checkout's build (after its own `npm run build`), installed the same way, to measure a
//     change against it in paired rounds (installed/base)
import { spawn } from 'node:child_process'
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import net from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { quantile, ratio } from './stats.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const dir = join(root, 'bench', 'startup')
/** name, program, port (distinct per variant), uid of the process that must answer */
const allVariants = [
  { name: 'plain', program: join(dir, 'plain.mjs'), port: 711, uid: 0 },
  { name: 'spawn', program: join(dir, 'spawn.mjs'), port: 712, uid: 65534 },
  { name: 'cluster', program: join(dir, 'cluster.mjs'), port: 713, uid: 65534 },
  { name: 'privsep', program: join(dir, 'privsep.mjs'), port: 714, uid: 65534 },
  { name: 'installed', program: null, port: 715, uid: 65534 } // program: see installedLayout()
]
// STARTUP_BASE=DIR: variant "base", another checkout's build (after its `npm run build`), laid
// out as installed, to measure a change against it in the same paired rounds as "installed".
if (process.env.STARTUP_BASE) allVariants.push({ name: 'base', program: null, from: process.env.STARTUP_BASE, port: 717, uid: 65534 })
const runs = Number(process.argv[2] ?? process.env.STARTUP_RUNS ?? 15)
const wanted = process.env.STARTUP_VARIANTS?.split(',')
const variants = allVariants.filter((v) => !wanted || wanted.includes(v.name))
const RETRY_MS = 1
const TIMEOUT_MS = 10_000

if (process.getuid?.() !== 0) {
  console.error('bench/startup.mjs must run as root: every variant binds a port below 1024')
  process.exit(1)
}
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`runs must be a positive integer, not ${process.argv[2] ?? process.env.STARTUP_RUNS}`)
  process.exit(1)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A directory laid out as npm installs privsep, readable by nobody: node_modules/privsep (its
 * package.json and dist/) and node_modules/privsep-<triple> (npm/<triple>/package.json and
 * the addon and monitor), all from the checkout `root`, with privsep.mjs beside them. Returns
 * that privsep.mjs.
 */
function installedLayout (root) {
  const builds = readdirSync(root).filter((name) => /^privsep\..+\.node$/.test(name))
  if (builds.length !== 1) throw new Error(`expected one local build privsep.<triple>.node in ${root}, found ${builds.length}: run npm run build`)
  const triple = builds[0].slice('privsep.'.length, -'.node'.length)
  const layout = mkdtempSync('/tmp/privsep-startup-')
  chmodSync(layout, 0o755)
  const main = join(layout, 'node_modules', 'privsep')
  const platform = join(layout, 'node_modules', `privsep-${triple}`)
  cpSync(join(root, 'package.json'), join(main, 'package.json'))
  cpSync(join(root, 'dist'), join(main, 'dist'), { recursive: true })
  cpSync(join(root, 'npm', triple, 'package.json'), join(platform, 'package.json'))
  cpSync(join(root, builds[0]), join(platform, builds[0]))
  cpSync(join(root, `privsep-monitor.${triple}`), join(platform, `privsep-monitor.${triple}`))
  cpSync(join(dir, 'privsep.mjs'), join(layout, 'privsep.mjs'))
  return join(layout, 'privsep.mjs')
}

/** One connection attempt: the line the server sent, or null if nothing listens yet. */
function ask (port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let data = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => { data += chunk })
    socket.on('end', () => resolve(data))
    socket.on('error', (err) => {
      socket.destroy()
      if (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET') resolve(null)
      else reject(err)
    })
  })
}

/** Resolves once nothing listens on `port` any more (every holder of the socket is gone). */
async function portFree (port) {
  const deadline = Date.now() + TIMEOUT_MS
  for (;;) {
    const free = await new Promise((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' })
      socket.on('connect', () => { socket.destroy(); resolve(false) })
      socket.on('error', () => resolve(true))
    })
    if (free) return
    if (Date.now() > deadline) throw new Error(`port ${port} still answers ${TIMEOUT_MS} ms after the kill`)
    await sleep(5)
  }
}

/** Launches `variant`, returns ms from just before spawn to the first full answer. */
async function once (variant) {
  await portFree(variant.port)
  const start = process.hrtime.bigint()
  const child = spawn(process.execPath, [variant.program, String(variant.port)], {
    stdio: ['ignore', 'inherit', 'inherit'], detached: true
  })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  let answer = null
  let failed = false
  child.on('exit', () => { failed = true })
  const deadline = Date.now() + TIMEOUT_MS
  while (answer === null) {
    answer = await ask(variant.port)
    if (answer !== null) break
    if (failed) throw new Error(`${variant.name} exited before answering`)
    if (Date.now() > deadline) throw new Error(`${variant.name} did not answer within ${TIMEOUT_MS} ms`)
    await sleep(RETRY_MS)
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  const crashed = child.exitCode !== null || child.signalCode !== null
  const match = /^uid=(\d+) pid=(\d+)\n$/.exec(answer)
  // Kill the launched process's group and the answering process (privsep's child runs in a
  // process group of its own), then wait for the port to be free before the next run.
  try { process.kill(-child.pid, 'SIGKILL') } catch {}
  if (match) try { process.kill(Number(match[2]), 'SIGKILL') } catch {}
  await exited
  await portFree(variant.port)
  if (crashed) throw new Error(`${variant.name}: the launched process ended (${child.exitCode ?? child.signalCode}) though its server answered`)
  if (!match || Number(match[1]) !== variant.uid) {
    throw new Error(`${variant.name}: expected an answer from uid ${variant.uid}, got ${JSON.stringify(answer)}`)
  }
  return ms
}

for (const variant of variants.filter((v) => v.program === null)) variant.program = installedLayout(variant.from ?? root)
const times = new Map(variants.map((v) => [v.name, []]))
try {
  // One warm-up round, not counted: page cache, the addon, nobody's passwd entry.
  for (const variant of variants) await once(variant)
  for (let round = 0; round < runs; round++) {
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(round + k) % variants.length]
      times.get(variant.name).push(await once(variant))
    }
  }
} finally {
  for (const variant of variants.filter((v) => v.program.startsWith('/tmp/privsep-startup-'))) {
    rmSync(dirname(variant.program), { recursive: true, force: true })
  }
}

const stats = new Map()
for (const [name, list] of times) {
  const sorted = [...list].sort((a, b) => a - b)
  stats.set(name, { median: quantile(sorted, 0.5), p25: quantile(sorted, 0.25), p75: quantile(sorted, 0.75), min: sorted[0], max: sorted.at(-1) })
}
const fmt = (x) => x.toFixed(1).padStart(7)
console.log(`startup: launch to first answer on a privileged port, ${runs} runs each, interleaved; ms`)
console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} cpus`)
console.log('variant     median     p25     p75     min     max')
for (const [name, s] of stats) {
  console.log(`${name.padEnd(9)} ${fmt(s.median)} ${fmt(s.p25)} ${fmt(s.p75)} ${fmt(s.min)} ${fmt(s.max)}`)
}
console.log('\nratios of medians (row / column)')
const names = [...stats.keys()]
console.log('          ' + names.map((n) => n.padStart(10)).join(''))
for (const row of names) {
  console.log(row.padEnd(10) + names.map((col) => (stats.get(row).median / stats.get(col).median).toFixed(2).padStart(10)).join(''))
}
if (stats.has('spawn')) {
  console.log('\ntarget: privsep no slower than the hand-written spawn (95% interval by resampling rounds)')
  for (const name of ['privsep', 'installed', 'base'].filter((n) => stats.has(n))) {
    const r = ratio(times.get(name), times.get('spawn'))
    console.log(`  ${name}/spawn = ${r.text}: ${r.value <= 1 ? 'met' : 'NOT met'}`)
  }
}
if (stats.has('base') && stats.has('installed')) console.log(`\ninstalled/base = ${ratio(times.get('installed'), times.get('base')).text} (paired rounds: this checkout against ${process.env.STARTUP_BASE})`)
