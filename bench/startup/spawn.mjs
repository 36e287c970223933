// Startup variant "spawn": the root parent listens, then starts a child with
// child_process.spawn as nobody, handing it the listening socket as fd 3 in `stdio`.
// The parent waits for the child and exits with its code, as a privsep parent does.
// Usage: node spawn.mjs <port>
import { spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { nobody } from './nobody.mjs'

const port = Number(process.argv[2])
const server = net.createServer()
server.listen({ port, host: '127.0.0.1' }, () => {
  const { uid, gid } = nobody()
  const child = spawn(process.execPath, [fileURLToPath(new URL('spawn-child.mjs', import.meta.url))], {
    uid, gid, stdio: ['inherit', 'inherit', 'inherit', server._handle.fd]
  })
  server.close()
  child.on('exit', (code, signal) => process.exit(code ?? 1))
})
