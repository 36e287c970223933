// serve(): one call wiring a net, tls, http, https or http2 server to a lifecycle: listen on a
// privsep Listener, register every accepted connection, and on shutdown stop accepting, close
// idle HTTP keep-alive connections, refuse later keep-alive requests, and send HTTP/2 GOAWAY.
import type { Server, Socket } from 'node:net'
import type { ConnectionRegistry } from './connections.js'
import { PrivsepError } from './errors.js'
import type { Listener } from './listener.js'

export interface ServeOptions {
  /** The `protocol` label of the server's connections, e.g. `smtp`, `https`. */
  protocol: string
  /** The `listener` label: the listener's name, e.g. `public`, `internal`. */
  name: string
}

/** What serve() needs from a lifecycle. */
export interface ServeHost {
  readonly connections: ConnectionRegistry
  onShutdown: (hook: () => void) => () => void
}

/** The parts of http.Server, and of an HTTP/2 session, that serve() uses. */
interface HttpLike {
  closeIdleConnections?: () => void
  maxRequestsPerSocket?: number | null
}
interface Http2SessionLike {
  close: () => void
  closed: boolean
  once: (event: 'close', fn: () => void) => unknown
}
interface InFlight {
  _httpMessage?: { headersSent: boolean, shouldKeepAlive: boolean } | null
}

/**
 * Listens on `listener` and ties `server` to `host`'s shutdown: every accepted connection is
 * registered under `{ protocol, listener: name }` (TLS servers: on 'secureConnection', so the
 * socket registered is the one the application uses). On shutdown it stops accepting
 * (`server.close()`); for HTTP/1 it closes idle keep-alive connections, marks responses in
 * flight `Connection: close`, and answers any later request on a kept-alive connection with
 * 503 through Node's `maxRequestsPerSocket` ('dropRequest'), so it never reaches the
 * 'request' handler; for HTTP/2 it sends GOAWAY (`session.close()`) on every session. What
 * stays open is closed by the registry when `context` aborts. Resolves once listening.
 */
export async function serve<S extends Server> (host: ServeHost, server: S, listener: Listener, options: ServeOptions): Promise<S> {
  const { protocol, name } = options ?? {}
  if (typeof protocol !== 'string' || protocol === '' || typeof name !== 'string' || name === '') {
    throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', 'serve needs options.protocol and options.name, non-empty strings (the metric labels)')
  }
  const connections = host.connections
  if (connections.closing) {
    throw new PrivsepError('ERR_PRIVSEP_SHUTDOWN', `serve(${protocol}/${name}): shutdown has started, not listening on ${listener.addr}`)
  }
  const event = isTlsServer(server) ? 'secureConnection' : 'connection'
  server.on(event, (socket: Socket) => { connections.register(socket, protocol, name) })

  // HTTP/2: the sessions, to send each a GOAWAY on shutdown (one entry per session).
  const sessions = new Set<Http2SessionLike>()
  server.on('session', (session: Http2SessionLike) => {
    if (connections.closing) {
      session.close()
      return
    }
    sessions.add(session)
    session.once('close', () => { sessions.delete(session) })
  })

  // HTTP/1 connections that have had a request: the only ones closed as idle at the stop.
  const used = new WeakSet<Socket>()
  server.on('request', (req: { socket: Socket }) => { used.add(req.socket) })

  const stop = (): void => {
    const log = connections.loggerFor(protocol, name)
    server.close()
    const http = server as unknown as HttpLike
    if (typeof http.closeIdleConnections === 'function') {
      // Number.MIN_VALUE > 0 turns Node's per-socket request limit on at "fewer than one":
      // every request parsed from now on gets 503 + Connection: close, not the handler.
      http.maxRequestsPerSocket = Number.MIN_VALUE
      // Idle keep-alive connections close now. Not one accepted a moment ago whose request has
      // not arrived yet (as Go's Shutdown spares new connections): closing it would reset a
      // client that did nothing wrong; its request gets the 503 above instead. Another
      // process may serve the same listener (an upgrade's new generation).
      connections.forEach((socket) => {
        const res = (socket as unknown as InFlight)._httpMessage
        if (res != null && !res.headersSent) res.shouldKeepAlive = false
        if (res == null && used.has(socket as unknown as Socket)) socket.destroy()
      })
    }
    for (const session of sessions) session.close()
    log.info({ sessions: sessions.size > 0 ? sessions.size : undefined }, 'stopped accepting')
  }
  host.onShutdown(stop)

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => { reject(err) }
    server.once('error', onError)
    server.listen(listener, () => {
      server.off('error', onError)
      connections.loggerFor(protocol, name).info({ address: server.address() ?? listener.addr, network: listener.network }, 'listening')
      resolve()
    })
  })
  return server
}

/**
 * tls.Server and its subclasses (https, http2 secure) without loading node:tls, which costs
 * several ms at start-up in a program that has no TLS server.
 */
function isTlsServer (server: Server): boolean {
  const s = server as unknown as { addContext?: unknown, setSecureContext?: unknown }
  return typeof s.addContext === 'function' && typeof s.setSecureContext === 'function'
}
