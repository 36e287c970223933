// A server for lifecycle.win.mjs: serves the port in argv[2] through privsep's lifecycle with
// its defaults (exit when drained), logs JSON to stdout, and starts the shutdown on "stop" from
// stdin (Windows has no SIGTERM to send).
import net from 'node:net'
import { configureLifecycle, listen, serve, startShutdown } from 'privsep'

configureLifecycle({ graceMs: 200, registry: false })
const listener = listen('tcp', `127.0.0.1:${process.argv[2]}`)
await serve(net.createServer((socket) => socket.write('220 ready\r\n')), listener, { protocol: 'smtp', name: 'public' })
process.stdin.on('data', (chunk) => { if (String(chunk).includes('stop')) void startShutdown('stdin') })
