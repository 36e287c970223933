// bench/startup/trace: the child of the traced "spawn" variant (see index.mjs).
const T = () => (performance.timeOrigin + performance.now()).toFixed(2)
const marks = [['C.origin', performance.timeOrigin.toFixed(2)], ['C.main', T()]]
const net = await import('node:net')
marks.push(['C.imported', T()], ['C.restored', T()], ['C.bound', T()])
net.createServer((socket) => socket.end(`uid=${process.getuid()} pid=${process.pid}\n`))
  .listen({ fd: 3 }, () => { marks.push(['C.listening', T()]); process.getBuiltinModule('node:fs').writeSync(2, marks.map(m => m.join('=')).join(' ') + '\n') })
