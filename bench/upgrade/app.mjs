// The program bench/upgrade.mjs runs: as root it binds the port, then serves HTTP as nobody,
// answering `generation pid`, and prints `{ "ready": generation }` once each generation is ready.
import { listen, forkExecUnprivileged, restorePassedFiles, cleanupPassedFiles, handleSignals, serve, ready, privsep } from 'privsep'
import http from 'node:http'

if (process.getuid() !== 0) restorePassedFiles()
const web = listen('tcp4', process.argv[2])
if (process.getuid() === 0) await forkExecUnprivileged({ user: 'nobody' })
cleanupPassedFiles()
handleSignals()
const server = http.createServer((req, res) => res.end(`${privsep.generation} ${process.pid}\n`))
await serve(server, web, { protocol: 'http', name: 'web' })
await ready()
process.stdout.write(JSON.stringify({ ready: privsep.generation }) + '\n')
