// Program-wide metrics: counters every generation of the program adds to, so that a scrape
// answered by any generation reports the totals of all of them and no counter goes back at an
// upgrade (Envoy's shared-memory stats). The monitor creates the region (a sealed memfd,
// crates/core/src/region.rs) and passes it to each generation, which maps it and counts in it
// with Atomics; the monitor never maps it. Without a monitor the same code counts in a private
// buffer. docs/PROTOCOL.md, "The metrics region", is the layout below in prose.
//
// A generation trusts the region only as far as its own numbers go: another generation (one
// that went wrong, or hostile) can write anything there. Reading never throws: a key entry that
// does not decode is skipped, a negative number reads as 0, and series are recomputed into a
// valid exposition (cumulative buckets, count = the +Inf bucket) at every scrape.

/** How a connection ended: the `reason` label of `privsep_connections_closed_total`. */
export const closeReasons = ['closed', 'error', 'idle', 'forced', 'unregistered'] as const
export type CloseReason = typeof closeReasons[number]
export const CLOSED = 0
export const ERROR = 1
export const IDLE = 2
export const FORCED = 3
export const UNREGISTERED = 4

/** Upper bounds (seconds) of the connection duration histogram: OpenTelemetry's server connection duration. */
export const durationBuckets = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300] as const

/** The broker requests counted, and how they ended. */
export const brokerKinds = ['file', 'listener', 'notify', 'upgrade'] as const
export const brokerResults = ['ok', 'denied', 'failed', 'closed'] as const
export type BrokerKind = typeof brokerKinds[number]
export type BrokerResult = typeof brokerResults[number]

// ---- the layout (bytes; every number little-endian, as the machine's own) ----
/** The region's size: crates/core/src/region.rs `SIZE`. */
export const regionSize = 96 * 1024
/** Header word 0: 0 in a new region, then this layout's id (a region of another layout is not used). */
const LAYOUT = 0x314d5350 // 'PSM1'
/** i64 indexes in the header. How the monitor's upgrades ended: the monitor writes these two
 * (crates/core/src/region.rs `UPGRADES_AT`, byte 16) when one ends; the children only read them. */
const UPGRADES_SUCCEEDED = 2
const UPGRADES_FAILED = 3
const DRAIN_MICROS = 4
const BROKER = 8 // 4 kinds x 4 results: 8..23
/** The key table: entries of 128 bytes from byte 256. */
const KEYS_AT = 256
const KEY_BYTES = 128
const KEY_MAX = KEY_BYTES - 8
/** How many { protocol, listener } series the region holds. */
export const maxSeries = 256
/** Each series' values: 24 i64 from VALUES_AT. */
const VALUES_AT = KEYS_AT + maxSeries * KEY_BYTES
const SLOT = 24
// In a slot: 0 accepted, 1..5 closed per reason, 6..20 duration buckets (the last +Inf), 21 duration sum (µs).
const S_ACCEPTED = 0
const S_CLOSED = 1
const S_BUCKETS = 6
const S_SUM = S_BUCKETS + durationBuckets.length + 1
/** Key entry states. */
const EMPTY = 0
const CLAIMED = 1
const PUBLISHED = 2

if (VALUES_AT + maxSeries * SLOT * 8 > regionSize || S_SUM >= SLOT) throw new Error('privsep: the metrics layout does not fit the region')

/** The clock connection durations are measured with; bound once (a lookup less per call). */
export const now: () => number = performance.now.bind(performance)

/** One { protocol, listener } series: where its numbers are. */
export class Series {
  readonly #v: BigInt64Array
  readonly #b: number

  constructor (view: BigInt64Array, base: number) {
    this.#v = view
    this.#b = base
  }

  accepted (): void {
    Atomics.add(this.#v, this.#b + S_ACCEPTED, 1n)
  }

  /** A connection registered at `since` (`now()`) ended with `reason`. */
  closed (reason: number, since: number): void {
    const ms = now() - since
    const seconds = ms / 1000
    let i = 0
    while (i < durationBuckets.length && seconds > durationBuckets[i]) i++
    const v = this.#v
    const b = this.#b
    Atomics.add(v, b + S_CLOSED + reason, 1n)
    Atomics.add(v, b + S_BUCKETS + i, 1n)
    Atomics.add(v, b + S_SUM, BigInt(Math.round(ms * 1000)))
  }
}

/** One series' numbers as read at a scrape. */
export interface SeriesValues {
  protocol: string
  listener: string
  accepted: number
  closed: number[]
  /** Per bucket (not cumulative), the last one +Inf. */
  buckets: number[]
  sumSeconds: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** A number the region holds, as a JavaScript number: never negative. */
function read (view: BigInt64Array, index: number): number {
  const value = Atomics.load(view, index)
  return value > 0n ? Number(value) : 0
}

export class ProgramMetrics {
  #i32: Int32Array
  #i64: BigInt64Array
  #shared = false
  #used = false
  readonly #series = new Map<string, Series>()
  /** Series the region had no room for (or whose labels are too long): this process only. */
  readonly #overflow = new Map<string, BigInt64Array>()
  /** This process's generation (privsep_generation). */
  generation = 1

  /** A private buffer; `attach` puts the shared region in its place. */
  constructor () {
    const buffer = new ArrayBuffer(regionSize)
    this.#i32 = new Int32Array(buffer)
    this.#i64 = new BigInt64Array(buffer)
    Atomics.store(this.#i32, 0, LAYOUT)
  }

  /** True once counting in a region shared with other generations. */
  get shared (): boolean {
    return this.#shared
  }

  /**
   * Counts in `buffer` (the shared region) from now on. False, and nothing changes, when it
   * holds another layout (a generation of another privsep version created it, or it was
   * overwritten), when it has the wrong size, or when counting already started here.
   */
  attach (buffer: ArrayBuffer): boolean {
    if (this.#used || buffer.byteLength !== regionSize) return false
    const i32 = new Int32Array(buffer)
    const layout = Atomics.compareExchange(i32, 0, 0, LAYOUT)
    if (layout !== 0 && layout !== LAYOUT) return false
    this.#i32 = i32
    this.#i64 = new BigInt64Array(buffer)
    this.#shared = true
    return true
  }

  /** The series of `{ protocol, listener }`: found in the key table, or added to it. */
  series (protocol: string, listener: string): Series {
    this.#used = true
    const key = JSON.stringify([protocol, listener])
    let series = this.#series.get(key)
    if (series === undefined) {
      const slot = this.#slot(encoder.encode(key))
      if (slot >= 0) {
        series = new Series(this.#i64, (VALUES_AT >> 3) + slot * SLOT)
      } else {
        const own = new BigInt64Array(SLOT)
        this.#overflow.set(key, own)
        series = new Series(own, 0)
      }
      this.#series.set(key, series)
    }
    return series
  }

  /**
   * The key table's entry for `key` (UTF-8 JSON `[protocol, listener]`), claimed if no
   * entry holds it yet; -1 when the key is too long or the table is full. Claiming is one
   * compareExchange (empty to claimed), then the key, then published: another process that
   * meets a claimed entry passes on, so a key may end up in two entries, which a scrape adds up.
   */
  #slot (key: Uint8Array): number {
    if (key.length > KEY_MAX) return -1
    const i32 = this.#i32
    const bytes = new Uint8Array(i32.buffer)
    for (let slot = 0; slot < maxSeries; slot++) {
      const at = KEYS_AT + slot * KEY_BYTES
      let state = Atomics.load(i32, at >> 2)
      if (state === EMPTY) {
        state = Atomics.compareExchange(i32, at >> 2, EMPTY, CLAIMED)
        if (state === EMPTY) {
          bytes.set(key, at + 8)
          Atomics.store(i32, (at >> 2) + 1, key.length)
          Atomics.store(i32, at >> 2, PUBLISHED)
          return slot
        }
      }
      if (state === PUBLISHED && Atomics.load(i32, (at >> 2) + 1) === key.length && equal(bytes, at + 8, key)) return slot
    }
    return -1
  }

  /** Every series with its numbers, the same key's entries added up; what does not decode is skipped. */
  read (): SeriesValues[] {
    const out = new Map<string, SeriesValues>()
    const add = (key: string, view: BigInt64Array, base: number): void => {
      let labels: unknown
      try {
        labels = JSON.parse(key)
      } catch {
        return
      }
      if (!Array.isArray(labels) || labels.length !== 2 || typeof labels[0] !== 'string' || typeof labels[1] !== 'string') return
      let values = out.get(key)
      if (values === undefined) {
        values = { protocol: labels[0], listener: labels[1], accepted: 0, closed: closeReasons.map(() => 0), buckets: Array(durationBuckets.length + 1).fill(0), sumSeconds: 0 }
        out.set(key, values)
      }
      values.accepted += read(view, base + S_ACCEPTED)
      for (let r = 0; r < closeReasons.length; r++) values.closed[r] += read(view, base + S_CLOSED + r)
      for (let i = 0; i <= durationBuckets.length; i++) values.buckets[i] += read(view, base + S_BUCKETS + i)
      values.sumSeconds += read(view, base + S_SUM) / 1e6
    }
    const i32 = this.#i32
    const bytes = new Uint8Array(i32.buffer)
    for (let slot = 0; slot < maxSeries; slot++) {
      const at = KEYS_AT + slot * KEY_BYTES
      if (Atomics.load(i32, at >> 2) !== PUBLISHED) continue
      const length = Atomics.load(i32, (at >> 2) + 1)
      if (!(length > 0 && length <= KEY_MAX)) continue
      let key: string
      try {
        key = decoder.decode(bytes.slice(at + 8, at + 8 + length))
      } catch {
        continue
      }
      add(key, this.#i64, (VALUES_AT >> 3) + slot * SLOT)
    }
    for (const [key, own] of this.#overflow) add(key, own, 0)
    return [...out.values()]
  }

  brokerRequest (kind: string, result: BrokerResult): void {
    const k = brokerKinds.indexOf(kind as BrokerKind)
    if (k < 0) return
    Atomics.add(this.#i64, BROKER + k * brokerResults.length + brokerResults.indexOf(result), 1n)
  }

  /** A drain (shutdown from the stop to the last connection closed) took `seconds`. */
  drained (seconds: number): void {
    Atomics.store(this.#i64, DRAIN_MICROS, BigInt(Math.max(0, Math.round(seconds * 1e6))))
  }

  upgrades (): { succeeded: number, failed: number } {
    return { succeeded: read(this.#i64, UPGRADES_SUCCEEDED), failed: read(this.#i64, UPGRADES_FAILED) }
  }

  brokerRequests (): Array<{ kind: BrokerKind, result: BrokerResult, count: number }> {
    const out: Array<{ kind: BrokerKind, result: BrokerResult, count: number }> = []
    brokerKinds.forEach((kind, k) => brokerResults.forEach((result, r) => {
      const count = read(this.#i64, BROKER + k * brokerResults.length + r)
      if (count > 0) out.push({ kind, result, count })
    }))
    return out
  }

  /** The last drain's duration in seconds; 0 before any. */
  lastDrainSeconds (): number {
    return read(this.#i64, DRAIN_MICROS) / 1e6
  }

  /** Tests: the buffer counted in (to corrupt it on purpose). */
  get buffer (): ArrayBufferLike {
    return this.#i32.buffer
  }
}

function equal (bytes: Uint8Array, at: number, key: Uint8Array): boolean {
  for (let i = 0; i < key.length; i++) if (bytes[at + i] !== key[i]) return false
  return true
}

let processMetrics: ProgramMetrics | undefined

/** The process's program metrics (one region per process). */
export function programMetrics (): ProgramMetrics {
  processMetrics ??= new ProgramMetrics()
  return processMetrics
}
