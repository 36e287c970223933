// bench/startup/trace: the "spawn" variant with timestamps (see index.mjs).
const T = () => (performance.timeOrigin + performance.now()).toFixed(2)
const marks = [['P.origin', performance.timeOrigin.toFixed(2)], ['P.main', T()]]
const { spawn } = await import('node:child_process')
const net = await import('node:net')
const { nobody } = await import('../nobody.mjs')
marks.push(['P.imported', T()])
const port = Number(process.argv[2])
const server = net.createServer()
server.listen({ port, host: '127.0.0.1' }, () => {
  marks.push(['P.bound', T()])
  const { uid, gid } = nobody()
  marks.push(['P.fork', T()])
  const child = spawn(process.execPath, [new URL('spawn-child.mjs', import.meta.url).pathname], {
    uid, gid, stdio: ['inherit', 'inherit', 'inherit', server._handle.fd]
  })
  process.getBuiltinModule('node:fs').writeSync(2, marks.map(m => m.join('=')).join(' ') + '\n')
  server.close()
  child.on('exit', (code, signal) => process.exit(code ?? 1))
})
