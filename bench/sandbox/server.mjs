// The program bench/sandbox.mjs starts: an HTTP server on a privileged port that drops to
// nobody with the kernel sandbox on (the default) or off (`sandbox: false`).
// Usage: node server.mjs <port> on|off
import http from 'node:http'
import { listen, forkExecUnprivileged, restorePassedFiles, cleanupPassedFiles } from 'privsep'

const port = Number(process.argv[2])
if (process.getuid() !== 0) restorePassedFiles()
const listener = listen('tcp', `127.0.0.1:${port}`)
if (process.getuid() === 0) await forkExecUnprivileged({ user: 'nobody', cwd: '/', sandbox: process.argv[3] === 'off' ? false : undefined })
cleanupPassedFiles()
http.createServer((req, res) => res.end('ok\n')).listen(listener)
process.on('SIGTERM', () => process.exit(0))
