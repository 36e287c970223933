// Errors shaped like Node's own: a stable `code` to match on, `errno` and `syscall` where the
// OS said no, and a message naming what was involved.
const { getSystemErrorName } = process.getBuiltinModule('node:util') // not `import`: see src/index.ts

/** Every code privsep itself throws; OS refusals carry the errno's name (`EACCES`, ...). */
export type PrivsepErrorCode =
  | 'ERR_PRIVSEP_INVALID_ARGUMENT'
  | 'ERR_PRIVSEP_ALREADY_LISTENING'
  | 'ERR_PRIVSEP_NOT_PASSED'
  | 'ERR_PRIVSEP_NO_PASSED_FILES'
  | 'ERR_PRIVSEP_PARENT_ONLY'
  | 'ERR_PRIVSEP_NOT_ROOT'
  | 'ERR_PRIVSEP_STATE'
  | 'ERR_PRIVSEP_ROOT_CHILD'
  | 'ERR_PRIVSEP_ENV_MALFORMED'
  | 'ERR_PRIVSEP_ENV_DUPLICATE'
  | 'ERR_PRIVSEP_PARENT_MISMATCH'
  | 'ERR_PRIVSEP_NOT_SOCKET'
  | 'ERR_PRIVSEP_SOCKET_TYPE'
  | 'ERR_PRIVSEP_NOT_LISTENING'
  | 'ERR_PRIVSEP_SOCKET_FAMILY'
  | 'ERR_PRIVSEP_SOCKET_ADDRESS'
  | 'ERR_PRIVSEP_NOT_FILE'
  | 'ERR_PRIVSEP_UNKNOWN_USER'
  | 'ERR_PRIVSEP_UNKNOWN_GROUP'
  | 'ERR_PRIVSEP_PRIVILEGE_DROP'
  | 'ERR_PRIVSEP_PROCESS_LIMIT'
  | 'ERR_PRIVSEP_SANDBOX'
  | 'ERR_PRIVSEP_NO_ACCESS'
  | 'ERR_PRIVSEP_SOCKET_PATH'
  | 'ERR_PRIVSEP_UNSAFE_PATH'
  | 'ERR_PRIVSEP_HANDOFF_MALFORMED'
  | 'ERR_PRIVSEP_DENIED'
  | 'ERR_PRIVSEP_BROKER_CLOSED'
  | 'ERR_PRIVSEP_BROKER_MALFORMED'
  | 'ERR_PRIVSEP_TLS_CONTEXT'
  | 'ERR_PRIVSEP_ACTIVATION_PID'
  | 'ERR_PRIVSEP_ACTIVATION_MALFORMED'
  | 'ERR_PRIVSEP_NOT_ACTIVATED'
  | 'ERR_PRIVSEP_FDSTORE_FULL'
  | 'ERR_PRIVSEP_UNSUPPORTED'
  | 'ERR_PRIVSEP_SYSTEM_ACCOUNT'
  | 'ERR_PRIVSEP_NATIVE_LOAD'
  | 'ERR_PRIVSEP_UNSAFE_MONITOR'
  | 'ERR_PRIVSEP_INTERNAL'
  | 'ERR_PRIVSEP_SHUTDOWN'
  | 'ERR_PRIVSEP_METRIC_CONFLICT'

export class PrivsepError extends Error {
  readonly code: string
  errno?: number
  syscall?: string
  /** The file involved, where Node's own error named one (`openPrivileged`). */
  path?: string

  constructor (code: PrivsepErrorCode, message: string) {
    super(message)
    this.name = 'PrivsepError'
    this.code = code
  }
}

/**
 * Makes an error from the addon, the monitor's report or Node (`fs`, `spawn`) a
 * `PrivsepError` in Node's shape, keeping its code, errno, syscall, path and message: the
 * addon reports OS errors as `ERR_PRIVSEP_OS` with the raw errno; those get the errno's name
 * as `code` and, as in Node, a negative `errno`. Anything without a string `code` is a bug
 * and passes through as it is.
 */
export function fromNative (err: unknown): unknown {
  if (err instanceof PrivsepError || !(err instanceof Error)) return err
  const e = err as Error & { code?: unknown, errno?: number, syscall?: string, path?: string }
  if (typeof e.code !== 'string') return err
  let { code, errno, message } = e
  if (code === 'ERR_PRIVSEP_OS' && typeof errno === 'number') {
    errno = process.platform === 'win32' ? errno : -Math.abs(errno)
    code = 'UNKNOWN'
    try { code = getSystemErrorName(errno) } catch { /* an errno Node cannot name keeps UNKNOWN */ }
    message = `${code}: ${message}`
  }
  const out = new PrivsepError(code as PrivsepErrorCode, message)
  if (errno !== undefined) out.errno = errno
  if (e.syscall !== undefined) out.syscall = e.syscall
  if (e.path !== undefined) out.path = e.path
  return out
}
