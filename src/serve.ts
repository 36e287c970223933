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

interface Http2SessionLike {
  close: () => void
  closed: boolean
  once: (event: 'close', fn: () => void) => unknown
}
/** An HTTP/1 response, and a socket's `_httpMessage`: the response it is writing now. */
interface Response {
  shouldKeepAlive: boolean
  headersSent: boolean
  /** Node closes the connection after this response (set with its head). */
  _last: boolean
}
interface Request {
  socket: Socket
  httpVersionMajor: number
}
interface HttpSocket {
  _httpMessage?: Response | null
}

/** How long after the stop an idle kept-alive HTTP/1 connection is left for its next request. */
const keptAliveMs = 500

/** No response in flight on this HTTP/1 socket. */
function idle (socket: Socket): boolean {
  return (socket as unknown as HttpSocket)._httpMessage == null
}

/**
 * Listens on `listener` and ties `server` to `host`'s shutdown: every accepted connection is
 * registered under `{ protocol, listener: name }` from accept on (TLS servers too: the TCP
 * socket, so a handshake still running at the stop is waited for). On shutdown it stops accepting
 * (net.Server's `close()`); for HTTP/1 it marks responses in flight `Connection: close`, handles a
 * request that still arrives on an open connection with `Connection: close` (as Go's
 * `Shutdown`; the handler sees `shutdown` aborted), and closes kept-alive connections still
 * idle 500 ms after the stop (not new ones that have had no request yet); for HTTP/2 it sends
 * GOAWAY (`session.close()`) on every session. What stays open is closed by the registry when
 * `context` aborts. Resolves once listening.
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
  // From accept on (a TLS handshake too: one still running at the stop is waited for, and
  // force-closing the TCP socket closes the TLS socket over it).
  server.on('connection', (socket: Socket) => { connections.register(socket, protocol, name) })

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

  // HTTP/1: the last request handled on each open connection (the socket HTTP reads: over
  // TLS, the TLS socket). Pipelined requests are handled at once and answered in order, so
  // only the last response may say `Connection: close`: Node closes the connection after it,
  // and a response queued behind it would be lost.
  const last = new Map<Socket, Response>()
  server.on('request', (req: Request, res: Response) => {
    if (req.httpVersionMajor !== 1) return // HTTP/2's compatibility API: GOAWAY below
    const socket = req.socket
    if (!last.has(socket)) socket.once('close', () => last.delete(socket))
    last.set(socket, res)
  })
  const closeAfter = (req: Request, res: Response): void => {
    if (req.httpVersionMajor !== 1) return
    const before = last.get(req.socket)
    // A response still ahead of this one on the connection must not close it: this one does.
    // If its head already said close, the connection stays open for this one all the same.
    if (before !== undefined && (req.socket as unknown as HttpSocket)._httpMessage !== res) {
      if (!before.headersSent) before.shouldKeepAlive = true
      else before._last = false
    }
    res.shouldKeepAlive = false
  }

  const stop = (): void => {
    const log = connections.loggerFor(protocol, name)
    // net.Server's close: it stops accepting. http.Server's own also closes every idle
    // kept-alive connection at once, which the lines below do more carefully.
    process.getBuiltinModule('node:net').Server.prototype.close.call(server)
    // As Go's Shutdown: a request that still arrives on an open connection is handled, and
    // its response closes the connection. Another process may serve the same listener (an
    // upgrade's new generation), so a request refused here would be a request lost.
    server.prependListener('request', closeAfter)
    // Responses in flight whose head is not written yet say Connection: close.
    for (const [socket, res] of last) if (!idle(socket) && !res.headersSent) res.shouldKeepAlive = false
    // Kept-alive connections stay a moment: a client using one sends its next request within
    // it, answered with Connection: close (above), where closing the connection now would
    // cross that request (a reset the client has to retry). Those still idle then close. A
    // connection whose first request has not arrived is not in `last`: it is spared (as Go
    // spares new ones), since closing it would reset a client that did nothing wrong.
    if (last.size > 0) {
      setTimeout(() => {
        for (const [socket] of last) {
          if (!idle(socket)) continue
          // The registry holds the TCP socket; over TLS, `socket` is the TLS socket over it.
          connections.closingAs((socket as unknown as { _parent?: Socket | null })._parent ?? socket, 'idle')
          socket.destroy()
        }
      }, keptAliveMs).unref()
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
