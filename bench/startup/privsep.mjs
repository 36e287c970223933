// Startup variant "privsep": the same program runs as root (listen binds the port) and, after
// forkExecUnprivileged, again as nobody (restorePassedFiles gets the socket back) and serves.
// Usage: node privsep.mjs <port>
import net from 'node:net'
import { listen, forkExecUnprivileged, restorePassedFiles, cleanupPassedFiles } from 'privsep'

const port = Number(process.argv[2])
if (process.getuid() !== 0) restorePassedFiles()
const listener = listen('tcp', `127.0.0.1:${port}`)
if (process.getuid() === 0) await forkExecUnprivileged({ user: 'nobody' })
cleanupPassedFiles()
net.createServer((socket) => socket.end(`uid=${process.getuid()} pid=${process.pid}\n`))
  .listen(listener)
