// The Prometheus gauge of open connections per { protocol, listener } (mox's
// `mox_connections_count`, without the `_count` suffix: in Prometheus' naming rules, checked by
// `promtool check metrics`, that suffix belongs to histograms and summaries). Its value is
// counted in `collect()` at scrape time, so opening and closing a connection costs nothing
// here. prom-client is loaded on first use only.
import type { Gauge, Registry } from 'prom-client'
import { PrivsepError } from './errors.js'
import { requireDependency } from './native.js'

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
