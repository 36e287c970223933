// The addon loader and the addon's types, kept by hand (napi build writes none without
// napi-derive); __test__/native.test.mjs checks that they match what the addon exports.
import path from 'node:path'
import { fromNative, PrivsepError } from './errors'

/** One passed descriptor as the addon reports and takes it: `[fd, kind, value]`. */
export type PassedEntry = [fd: number, kind: string, value: string]

export interface SpawnRequest {
  program: string
  argv: string[]
  env: string[]
  passed: PassedEntry[]
  user: string
  group?: string
  umask?: number
}

export interface Native {
  parseAddress (network: string, address: string): string
  listen (network: string, address: string, backlog: number): number
  restore (pid: string | undefined, fds: string | undefined, files: string | undefined, ppid: number): PassedEntry[] | null
  spawn (request: SpawnRequest): number
  wait (pid: number): Promise<[code: number | null, signal: number | null]>
  dieBySignal (signal: number): never
  close (fd: number): void
}

/** The names the addon exports, in the order it defines them. */
export const nativeFunctions: ReadonlyArray<keyof Native> =
  ['parseAddress', 'listen', 'restore', 'spawn', 'wait', 'dieBySignal', 'close']

/** The platform part of binary and package names, as @napi-rs/cli spells it. */
export function platformTriple (): string {
  const { platform, arch } = process
  if (platform === 'linux') {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    return `linux-${arch}-${header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

let loaded: Native | undefined

/** The addon: a local build at the package root first, then the platform package. */
export function native (): Native {
  if (loaded) return loaded
  const triple = platformTriple()
  const candidates = [path.join(__dirname, '..', `privsep.${triple}.node`), `privsep-${triple}`]
  const failures: string[] = []
  for (const candidate of candidates) {
    try {
      loaded = wrap(require(candidate) as Native)
      return loaded
    } catch (err) {
      failures.push(`  ${candidate}: ${(err as Error).message.split('\n')[0]}`)
    }
  }
  throw new PrivsepError('ERR_PRIVSEP_NATIVE_LOAD',
    `privsep has no native addon for ${triple}; tried:\n${failures.join('\n')}\n` +
    `install the package privsep-${triple} (npm installs it with privsep on supported platforms) or build it with 'npm run build'`)
}

function wrap (addon: Native): Native {
  const wrapped: Record<string, unknown> = {}
  for (const name of nativeFunctions) {
    const fn = addon[name] as (...args: unknown[]) => unknown
    wrapped[name] = (...args: unknown[]) => {
      try {
        const result = fn(...args)
        return result instanceof Promise ? result.catch((err) => { throw fromNative(err) }) : result
      } catch (err) {
        throw fromNative(err)
      }
    }
  }
  return wrapped as unknown as Native
}
