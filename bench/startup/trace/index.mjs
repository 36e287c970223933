// Where the startup time goes: runs trace/spawn.mjs and trace/privsep.mjs (the startup
// variants with timestamps at each step, written to stderr) interleaved, and prints the median
// of each step, launch to answer. The marks use `performance`, which loads perf_hooks in every
// process (about 1 ms), so totals run a little above bench/startup.mjs's.
//
// Usage (as root): node bench/startup/trace/index.mjs [runs] [variant.mjs ...]
//   default 15 runs of spawn.mjs and privsep.mjs
// Steps: P = the root parent, C = the child as nobody; origin = performance.timeOrigin (early
// in Node's start-up), main = first line of the script, imported = after its imports,
// restored = after restorePassedFiles (privsep child), bound = after listen()/bind,
// fork = just before spawning, listening = the server's 'listening' event, answer = the
// harness read the reply.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { median } from '../../stats.mjs'

const runs = Number(process.argv[2] ?? 15)
const programs = process.argv.length > 3 ? process.argv.slice(3) : ['spawn.mjs', 'privsep.mjs']
const order = ['launch', 'P.origin', 'P.main', 'P.imported', 'P.restored', 'P.bound', 'P.fork',
  'C.origin', 'C.main', 'C.imported', 'C.restored', 'C.bound', 'C.listening', 'answer']
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function ask (port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let data = ''
    socket.on('data', (chunk) => { data += chunk })
    socket.on('end', () => resolve(data))
    socket.on('error', () => { socket.destroy(); resolve(null) })
  })
}

async function once (program, port) {
  while (await ask(port) !== null) await sleep(5) // a previous run still holds the port
  const t0 = performance.timeOrigin + performance.now()
  const child = spawn(process.execPath, [new URL(program, import.meta.url).pathname, String(port)],
    { stdio: ['ignore', 'inherit', 'pipe'], detached: true })
  let err = ''
  child.stderr.on('data', (chunk) => { err += chunk })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  for (;;) {
    const answer = await ask(port)
    if (answer) {
      const t = performance.timeOrigin + performance.now()
      try { process.kill(-child.pid, 'SIGKILL') } catch {}
      try { process.kill(Number(/pid=(\d+)/.exec(answer)[1]), 'SIGKILL') } catch {}
      await exited
      await sleep(100) // let the child's last stderr line arrive
      const marks = Object.fromEntries(err.trim().split(/\s+/).map((x) => x.split('=')).map(([k, v]) => [k, Number(v) - t0]))
      return { ...marks, launch: 0, answer: t - t0 }
    }
    await sleep(1)
  }
}

const results = Object.fromEntries(programs.map((p) => [p, []]))
for (let i = 0; i < runs; i++) {
  for (const [k, p] of programs.entries()) results[p].push(await once(p, 741 + k))
}
for (const p of programs) {
  const keys = order.filter((k) => results[p][0][k] !== undefined)
  console.log(`${p} (medians, ms; total ${median(results[p].map((m) => m.answer)).toFixed(1)})`)
  for (let i = 1; i < keys.length; i++) {
    console.log(`  ${`${keys[i - 1]} -> ${keys[i]}`.padEnd(28)} ${median(results[p].map((m) => m[keys[i]] - m[keys[i - 1]])).toFixed(1).padStart(6)}`)
  }
}
