// Startup variant "cluster": the root primary forks one worker as nobody with
// cluster.setupPrimary({ uid, gid }); the worker's listen() is served by the primary,
// which binds the port (round-robin scheduling, Node's default on Linux).
// Usage: node cluster.mjs <port>
import cluster from 'node:cluster'
import net from 'node:net'
import { nobody } from './nobody.mjs'

const port = Number(process.argv[2])
if (cluster.isPrimary) {
  const { uid, gid } = nobody()
  cluster.setupPrimary({ uid, gid })
  cluster.fork().on('exit', (code) => process.exit(code ?? 1))
} else {
  net.createServer((socket) => socket.end(`uid=${process.getuid()} pid=${process.pid}\n`))
    .listen({ port, host: '127.0.0.1' })
}
