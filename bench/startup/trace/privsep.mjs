// bench/startup/trace: the "privsep" variant with timestamps (see index.mjs). PRIVSEP_PKG
// names another build of the package to try a change (it must be readable by nobody).
const T = () => (performance.timeOrigin + performance.now()).toFixed(2)
const who = process.getuid() === 0 ? 'P' : 'C'
const marks = [[`${who}.origin`, performance.timeOrigin.toFixed(2)], [`${who}.main`, T()]]
// Written with writeSync: console's first use builds a stream (about 1 ms), which would land
// between P.fork and the fork.
const out = () => process.getBuiltinModule('node:fs').writeSync(2, marks.map(m => m.join('=')).join(' ') + '\n')
const net = await import('node:net')
const m = await import(process.env.PRIVSEP_PKG || 'privsep')
marks.push([`${who}.imported`, T()])
const port = Number(process.argv[2])
if (process.getuid() !== 0) m.restorePassedFiles()
marks.push([`${who}.restored`, T()])
const listener = m.listen('tcp', `127.0.0.1:${port}`)
marks.push([`${who}.bound`, T()])
if (process.getuid() === 0) { marks.push(['P.fork', T()]); out(); await m.forkExecUnprivileged({ user: 'nobody' }) }
m.cleanupPassedFiles()
net.createServer((socket) => socket.end(`uid=${process.getuid()} pid=${process.pid}\n`))
  .listen(listener, () => { marks.push([`${who}.listening`, T()]); out() })
