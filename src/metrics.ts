// The Prometheus gauge of open connections per { protocol, listener } (mox's
// `mox_connections_count`, without the `_count` suffix: in Prometheus' naming rules, checked by
// `promtool check metrics`, that suffix belongs to histograms and summaries). Its value is
// counted in `collect()` at scrape time, so opening and closing a connection costs nothing
// here. prom-client is loaded on first use only. Beside it, the program-wide families
// (src/program-metrics.ts): counters every generation adds to, read from the shared region.
import type { Gauge, Registry } from 'prom-client'
import { PrivsepError } from './errors.js'
import { requireDependency } from './native.js'
import { closeReasons, durationBuckets, programMetrics, type ProgramMetrics } from './program-metrics.js'

/** Default name of the gauge. */
export const defaultMetricName = 'privsep_connections'

export interface MetricsOptions {
  /** The prom-client registry to register in. Default: prom-client's default registry. */
  registry?: Registry
  /** The gauge's name. Default `privsep_connections`. */
  name?: string
}

/** Something that can say how many connections it holds per label pair (a registry). */
export interface ConnectionCountSource {
  countByLabels (add: (protocol: string, listener: string, count: number) => void): void
}

/** The sources feeding each gauge privsep created: a second registration reuses the gauge. */
const sourcesByGauge = new WeakMap<Gauge<'protocol' | 'listener'>, Set<ConnectionCountSource>>()

/**
 * Registers (or finds) the connection gauge in `options.registry` and makes `source` count
 * towards it. Calling it again for the same registry and name reuses the gauge; a metric of
 * that name that privsep did not create is ERR_PRIVSEP_METRIC_CONFLICT.
 */
export function registerConnectionGauge (source: ConnectionCountSource, options: MetricsOptions = {}): Gauge<'protocol' | 'listener'> {
  const promClient = requireDependency<typeof import('prom-client')>('prom-client')
  const registry = options.registry ?? promClient.register
  const name = options.name ?? defaultMetricName
  const existing = registry.getSingleMetric(name) as Gauge<'protocol' | 'listener'> | undefined
  if (existing !== undefined) {
    const sources = sourcesByGauge.get(existing)
    if (sources === undefined) {
      throw new PrivsepError('ERR_PRIVSEP_METRIC_CONFLICT',
        `the registry already holds a metric named ${name} that privsep did not create; choose another name (option name)`)
    }
    sources.add(source)
    return existing
  }
  const sources = new Set<ConnectionCountSource>([source])
  const gauge = new promClient.Gauge<'protocol' | 'listener'>({
    name,
    help: 'Open connections, per protocol and listener.',
    labelNames: ['protocol', 'listener'],
    registers: [registry],
    collect () {
      // Label pairs seen once stay, at 0 when empty: a drained server shows zeros, not nothing.
      const totals = new Map<string, { protocol: string, listener: string, count: number }>()
      for (const s of sources) {
        s.countByLabels((protocol, listener, count) => {
          const key = `${protocol}\0${listener}`
          const total = totals.get(key)
          if (total === undefined) totals.set(key, { protocol, listener, count })
          else total.count += count
        })
      }
      this.reset()
      for (const { protocol, listener, count } of totals.values()) this.set({ protocol, listener }, count)
    }
  })
  sourcesByGauge.set(gauge, sources)
  return gauge
}

/** What a family reads at scrape time: prom-client's own shape for `get()`. */
interface Value {
  value: number
  labels?: Record<string, string>
  metricName?: string
}

/** A family read from the program metrics at every scrape; prom-client calls `get()`. */
class ProgramFamily {
  readonly aggregator = 'sum'
  constructor (readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' | 'histogram', readonly values: () => Value[]) {}

  get (): { name: string, help: string, type: string, values: Value[], aggregator: string } {
    let values: Value[]
    try {
      values = this.values()
    } catch {
      values = [] // never fails a scrape: the region may hold anything another generation wrote
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset (): void {}
}

const families = new WeakSet<object>()

/** The program-wide families, by name: their help, type and values. */
function programFamilies (metrics: ProgramMetrics): ProgramFamily[] {
  const les = [...durationBuckets.map(String), '+Inf']
  return [
    new ProgramFamily('privsep_connections_accepted_total', 'Connections accepted, by every generation of the program.', 'counter',
      () => metrics.read().map((s) => ({ labels: { protocol: s.protocol, listener: s.listener }, value: s.accepted }))),
    new ProgramFamily('privsep_connections_closed_total', 'Connections ended, by every generation of the program, per reason: closed (by the peer or the server), error, idle (an idle keep-alive connection closed at the stop), forced (closed at the grace deadline or registered after the stop), unregistered.', 'counter',
      () => metrics.read().flatMap((s) => closeReasons.map((reason, r) => ({ labels: { protocol: s.protocol, listener: s.listener, reason }, value: s.closed[r] })))),
    new ProgramFamily('privsep_connection_duration_seconds', 'How long connections lasted, from accept to close, in every generation of the program.', 'histogram',
      () => metrics.read().flatMap((s) => {
        const labels = { protocol: s.protocol, listener: s.listener }
        let total = 0
        const out: Value[] = s.buckets.map((n, i) => {
          total += n
          return { metricName: 'privsep_connection_duration_seconds_bucket', labels: { ...labels, le: les[i] }, value: total }
        })
        out.push({ metricName: 'privsep_connection_duration_seconds_sum', labels, value: s.sumSeconds })
        out.push({ metricName: 'privsep_connection_duration_seconds_count', labels, value: total })
        return out
      })),
    new ProgramFamily('privsep_generation', 'The generation of the program this process is: 1, then one more per upgrade started.', 'gauge',
      () => [{ value: metrics.generation }]),
    new ProgramFamily('privsep_upgrades_total', 'Upgrades that succeeded (the new generation became ready) or failed (counted when a later generation becomes ready).', 'counter',
      () => {
        const { succeeded, failed } = metrics.upgrades()
        return [{ labels: { result: 'succeeded' }, value: succeeded }, { labels: { result: 'failed' }, value: failed }]
      }),
    new ProgramFamily('privsep_broker_requests_total', 'Requests to the monitor (the broker), by every generation, per kind and result.', 'counter',
      () => metrics.brokerRequests().map(({ kind, result, count }) => ({ labels: { kind, result }, value: count }))),
    new ProgramFamily('privsep_drain_duration_seconds', 'How long the last drain took, from the stop to the last connection closed (0 before any).', 'gauge',
      () => [{ value: metrics.lastDrainSeconds() }])
  ]
}

/**
 * Registers the program-wide families (privsep_connections_accepted_total, …) in `registry`
 * (default: prom-client's default registry). Again in the same registry reuses them; a metric
 * of one of their names that privsep did not create is ERR_PRIVSEP_METRIC_CONFLICT.
 */
export function registerProgramMetrics (registry?: Registry, metrics: ProgramMetrics = programMetrics()): void {
  const promClient = requireDependency<typeof import('prom-client')>('prom-client')
  const target = registry ?? promClient.register
  const fresh = programFamilies(metrics)
  for (const family of fresh) {
    const existing = target.getSingleMetric(family.name) as object | undefined
    if (existing !== undefined && !families.has(existing)) {
      throw new PrivsepError('ERR_PRIVSEP_METRIC_CONFLICT',
        `the registry already holds a metric named ${family.name} that privsep did not create; privsep's program-wide metrics need that name`)
    }
  }
  for (const family of fresh) {
    if (target.getSingleMetric(family.name) !== undefined) continue
    families.add(family)
    target.registerMetric(family as unknown as Parameters<Registry['registerMetric']>[0])
  }
}
