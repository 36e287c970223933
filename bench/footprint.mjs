// Footprint benchmark: what the root side holds while its unprivileged child serves. For each
// variant the launched root process starts, its child answers on a privileged port, and then
// the root process's resident memory (VmRSS), its private part (Private_Clean + Private_Dirty of
// /proc/PID/smaps_rollup: RSS also counts libc's pages, shared with every process), the dirty
// part of that (Private_Dirty: what the process wrote; the clean part is mostly its own
// executable's pages, which vary by tens of KiB run to run with the kernel's fault-around) and
// thread count are read from /proc:
// - privsep: the root process after the hand-off, which is privsep-monitor (same pid);
// - embedded: privsep with `exit: false`, a root Node process that stays (as privsep's root
//   process was before the monitor); the monitor it starts is not counted;
// - spawn: a hand-written root Node parent (child_process.spawn with uid/gid) that waits;
// - cluster: Node cluster's root primary with one worker as nobody.
// Rounds are interleaved; prints medians and privsep/variant ratios with 95% intervals.
//
// Usage (as root, after `npm run build`): node bench/footprint.mjs [rounds]   default 10
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, ratio } from './stats.mjs'

const dir = fileURLToPath(new URL('startup/', import.meta.url))
const variants = [
  { name: 'privsep', program: join(dir, 'privsep.mjs'), port: 721 },
  { name: 'embedded', program: join(dir, 'embedded.mjs'), port: 722 },
  { name: 'spawn', program: join(dir, 'spawn.mjs'), port: 723 },
  { name: 'cluster', program: join(dir, 'cluster.mjs'), port: 724 }
]
const rounds = Number(process.argv[2] ?? 10)
if (process.getuid?.() !== 0) {
  console.error('bench/footprint.mjs must run as root: every variant binds a port below 1024 and drops to nobody')
  process.exit(1)
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The child's answer (`uid=… pid=…`), or null while nothing listens. */
function ask (port) {
  return new Promise((resolve) => {
    let data = ''
    net.connect({ port, host: '127.0.0.1' }).setEncoding('utf8')
      .on('data', (chunk) => { data += chunk }).on('end', () => resolve(data)).on('error', () => resolve(null))
  })
}

/** Launches `variant`, waits for its child to answer, then reads the root process's footprint. */
async function once (variant) {
  const root = spawn(process.execPath, [variant.program, String(variant.port)], { stdio: 'ignore', detached: true })
  const exited = new Promise((resolve) => root.on('exit', resolve))
  try {
    let answer = null
    for (const deadline = Date.now() + 10_000; answer === null; await sleep(5)) {
      if (Date.now() > deadline) throw new Error(`${variant.name} did not answer`)
      answer = await ask(variant.port)
    }
    if (!answer.startsWith('uid=65534 ')) throw new Error(`${variant.name}: answered ${JSON.stringify(answer)}`)
    await sleep(200) // let start-up garbage settle, as a serving process would
    const status = readFileSync(`/proc/${root.pid}/status`, 'utf8')
    const field = (name) => Number(status.match(new RegExp(`^${name}:\\s*(\\d+)`, 'm'))[1])
    const comm = readFileSync(`/proc/${root.pid}/comm`, 'utf8').trim()
    const rollup = readFileSync(`/proc/${root.pid}/smaps_rollup`, 'utf8')
    const kib = (name) => Number(rollup.match(new RegExp(`^${name}:\\s*(\\d+) kB`, 'm'))[1])
    const privateKiB = kib('Private_Clean') + kib('Private_Dirty')
    return { rssKiB: field('VmRSS'), privateKiB, dirtyKiB: kib('Private_Dirty'), threads: field('Threads'), comm, child: Number(/pid=(\d+)/.exec(answer)[1]) }
  } finally {
    try { process.kill(-root.pid, 'SIGKILL') } catch {}
    await exited
    await sleep(50)
  }
}

const results = new Map(variants.map((v) => [v.name, []]))
for (const variant of variants) await once(variant) // warm-up: page cache, passwd lookups
for (let round = 0; round < rounds; round++) {
  for (let k = 0; k < variants.length; k++) {
    const variant = variants[(round + k) % variants.length]
    results.get(variant.name).push(await once(variant))
  }
}

console.log(`footprint: the root side while its child (nobody) serves, ${rounds} rounds, interleaved`)
console.log(`node ${process.version}`)
console.log('variant     process            RSS MiB  private MiB  dirty MiB  threads')
for (const [name, list] of results) {
  const rss = median(list.map((r) => r.rssKiB)) / 1024
  const own = median(list.map((r) => r.privateKiB)) / 1024
  const dirty = median(list.map((r) => r.dirtyKiB)) / 1024
  console.log(`${name.padEnd(11)} ${list[0].comm.padEnd(18)} ${rss.toFixed(2).padStart(7)}  ${own.toFixed(2).padStart(11)}  ${dirty.toFixed(2).padStart(9)}  ${String(median(list.map((r) => r.threads))).padStart(7)}`)
}
console.log('\nRSS ratios, privsep / variant (95% interval by resampling rounds)')
const rss = (name) => results.get(name).map((r) => r.rssKiB)
const own = (name) => results.get(name).map((r) => r.privateKiB)
for (const name of variants.map((v) => v.name).filter((n) => n !== 'privsep')) {
  console.log(`  privsep/${name} = ${ratio(rss('privsep'), rss(name)).text}; private memory ${ratio(own('privsep'), own(name)).text}`)
}
const privsep = results.get('privsep')
const worst = Math.max(...privsep.map((r) => r.rssKiB)) / 1024
console.log(`\ntarget: at most 2 MiB and 1 thread: ${worst <= 2 && privsep.every((r) => r.threads === 1) ? 'met' : 'NOT met'} (largest RSS ${worst.toFixed(2)} MiB, threads ${[...new Set(privsep.map((r) => r.threads))].join(',')})`)
