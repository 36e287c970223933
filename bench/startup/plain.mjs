// Startup variant "plain": one Node process, root all along, listens on the port itself.
// Usage: node plain.mjs <port>
import net from 'node:net'

const port = Number(process.argv[2])
net.createServer((socket) => socket.end(`uid=${process.getuid()} pid=${process.pid}\n`))
  .listen({ port, host: '127.0.0.1' })
