// The child of the "spawn" variant: serves the listening socket its parent passed as fd 3.
import net from 'node:net'

net.createServer((socket) => socket.end(`uid=${process.getuid()} pid=${process.pid}\n`))
  .listen({ fd: 3 })
