// Footprint variant "embedded": privsep with `exit: false`, so the root Node process stays for
// the child's lifetime (with the monitor as its child): what every privsep root process was
// before the monitor replaced it.
// Usage: node embedded.mjs <port>
import net from 'node:net'
import { listen, forkExecUnprivileged, restorePassedFiles, cleanupPassedFiles } from 'privsep'

const port = Number(process.argv[2])
if (process.getuid() !== 0) restorePassedFiles()
const listener = listen('tcp', `127.0.0.1:${port}`)
if (process.getuid() === 0) process.exit((await forkExecUnprivileged({ user: 'nobody', exit: false })).code ?? 1)
cleanupPassedFiles()
net.createServer((socket) => socket.end(`uid=${process.getuid()} pid=${process.pid}\n`))
  .listen(listener)
