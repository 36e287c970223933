// privsep's public API. The functions are bound to this process's `Privsep`; construct
// your own `Privsep` for tests or embedding.
import { Privsep } from './privsep'

export { Privsep } from './privsep'
export { Listener, type ListenOptions, type Network } from './listener'
export { PrivsepError, type PrivsepErrorCode } from './errors'
export { forwardedSignals, type ChildExit, type ForkExecOptions } from './spawn'

/** This process's privsep state: it has one set of passed descriptors and one parent. */
export const privsep = new Privsep()

export const listen = privsep.listen.bind(privsep)
export const openPrivileged = privsep.openPrivileged.bind(privsep)
export const restorePassedFiles = privsep.restorePassedFiles.bind(privsep)
export const cleanupPassedFiles = privsep.cleanupPassedFiles.bind(privsep)
export const forkExecUnprivileged: Privsep['forkExecUnprivileged'] = privsep.forkExecUnprivileged.bind(privsep)

/** Turns filesImmediate on or off for this process (see `Privsep#filesImmediate`). */
export function setFilesImmediate (on: boolean): void {
  privsep.filesImmediate = on
}
