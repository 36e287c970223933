// Key renewal without a restart: read a TLS server's key and certificate again (through the
// broker in a privsep child) and swap them in only if they make a valid context.
import { PrivsepError } from './errors.js'
import type { Logger } from './log.js'
import type { Privsep } from './privsep.js'

/** The files of a secure context, by path: what `requestFile` is asked for. */
export interface SecureContextFiles {
  key: string
  cert: string
  ca?: string
}

/** What `setSecureContext` is called on: a `tls`, `https` or secure `http2` server. */
export interface SecureServer {
  setSecureContext (options: { key: Buffer, cert: Buffer, ca?: Buffer }): void
}

/**
 * Reads `files` through `privsep`'s broker (or directly with filesImmediate), checks that
 * they make a secure context (the key matches the certificate, both parse), and only then
 * gives them to `server.setSecureContext`: all or nothing, so a failure keeps the context the
 * server has. New connections get the new certificate; open ones keep theirs.
 */
export async function reloadSecureContext (privsep: Privsep, server: SecureServer, files: SecureContextFiles): Promise<{ serial: string }> {
  const fs = process.getBuiltinModule('node:fs')
  const tls = process.getBuiltinModule('node:tls')
  const read = async (path: string): Promise<Buffer> => {
    const fd = await privsep.requestFile(path)
    try {
      return fs.readFileSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  }
  const options = { key: await read(files.key), cert: await read(files.cert), ...(files.ca !== undefined ? { ca: await read(files.ca) } : {}) }
  try {
    tls.createSecureContext(options)
  } catch (err) {
    const wrapped = new PrivsepError('ERR_PRIVSEP_TLS_CONTEXT',
      `${files.key} and ${files.cert} do not make a TLS context (${(err as Error).message}); the server keeps its current one`)
    wrapped.cause = err
    throw wrapped
  }
  server.setSecureContext(options)
  return { serial: new (process.getBuiltinModule('node:crypto').X509Certificate)(options.cert).serialNumber }
}

/**
 * Reloads `server`'s secure context from `files` on each `signal` (default SIGHUP, which the
 * monitor forwards), logging what happened: the new certificate's serial, or why the old
 * context stays. Returns a function that removes the handler.
 */
export function watchSecureContext (privsep: Privsep, logger: () => Logger, server: SecureServer, files: SecureContextFiles, signal: NodeJS.Signals = 'SIGHUP'): () => void {
  const onSignal = (): void => {
    reloadSecureContext(privsep, server, files).then(
      ({ serial }) => { logger().info({ signal, key: files.key, cert: files.cert, serial }, 'secure context reloaded') },
      // The error itself: pino's serializer logs its type, code, message and stack.
      (err: unknown) => { logger().warn({ signal, key: files.key, cert: files.cert, err }, 'secure context not reloaded; the old one stays') }
    )
  }
  process.on(signal, onSignal)
  return () => { process.off(signal, onSignal) }
}
