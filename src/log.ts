// Logging: the user's pino logger, or a default one named `privsep` created on first use, and
// flushing it before the process exits (a user's destination may write asynchronously).
import type { Logger } from 'pino'
import { requireDependency } from './native.js'

export type { Logger }

/** Where a logger comes from: given, or made on first use (pino is not loaded before that). */
export class LoggerSource {
  #logger: Logger | undefined

  constructor (logger?: Logger) {
    this.#logger = logger
  }

  get logger (): Logger {
    if (this.#logger === undefined) {
      const { pino } = requireDependency<typeof import('pino')>('pino')
      // Synchronous stdout: pino's default destination writes asynchronously, and its flush
      // returns before a write in flight has landed, so lines logged just before exit came
      // out after later ones (or not at all). A lifecycle logs a few lines per event.
      this.#logger = pino({ name: 'privsep' }, pino.destination({ dest: 1, sync: true }))
    }
    return this.#logger
  }

  set logger (logger: Logger) {
    this.#logger = logger
  }

  /** True once a logger exists (given or created), i.e. something may wait to be flushed. */
  get created (): boolean {
    return this.#logger !== undefined
  }
}

/**
 * Resolves when `logger`'s destination has written what it buffered, or after `timeoutMs`
 * (a destination that never answers must not keep the process from exiting).
 */
export async function flushLogger (logger: Logger, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    try {
      logger.flush(() => {
        clearTimeout(timer)
        resolve()
      })
    } catch {
      // A destination without flush support (or already closed): nothing left to wait for.
      clearTimeout(timer)
      resolve()
    }
  })
}
