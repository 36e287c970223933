// A small reader of the Prometheus text exposition format (0.0.4) and the naming rules
// `promtool check metrics` applies: metrics.test.mjs and program-metrics.test.mjs use them.
import { spawnSync } from 'node:child_process'

const name = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const labelName = '[a-zA-Z_][a-zA-Z0-9_]*'
const labelValue = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"'
// As Go's strconv.ParseFloat reads it (Prometheus does): Inf, NaN in any case ('Nan' from prom-client).
const number = '[-+]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN]|\\d+(?:\\.\\d*)?(?:[eE][-+]?\\d+)?|\\.\\d+(?:[eE][-+]?\\d+)?)'
const sampleLine = new RegExp(`^(${name})(?:\\{((?:${labelName}=${labelValue},?)*)\\})? (${number})(?: -?\\d+)?$`)
const suffixes = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] }

/**
 * Parses the Prometheus text format (0.0.4) into families: { name, help, type, samples:
 * [{ name, labels, value }] }. Throws on what the format does not allow: a malformed line, a
 * second HELP or TYPE, a TYPE after its samples, a family split in two, a sample that belongs
 * to no family its TYPE allows, a series twice.
 */
export function parseExposition (text) {
  const families = new Map()
  let current
  const family = (n) => {
    if (!families.has(n)) families.set(n, { name: n, help: undefined, type: undefined, samples: [], closed: false })
    return families.get(n)
  }
  const seen = new Set()
  text.split('\n').forEach((line, index) => {
    const fail = (why) => { throw new Error(`line ${index + 1}: ${why}: ${line}`) }
    if (line === '') return
    const meta = line.match(/^# (HELP|TYPE) (\S+)(?: (.*))?$/)
    if (meta) {
      const [, kind, n, rest = ''] = meta
      if (!new RegExp(`^${name}$`).test(n)) fail('bad metric name')
      const f = family(n)
      if (f.samples.length) fail(`${kind} after the samples of ${n}`)
      if (kind === 'HELP') {
        if (f.help !== undefined) fail(`second HELP for ${n}`)
        f.help = rest.replace(/\\(\\|n)/g, (_, c) => c === 'n' ? '\n' : '\\')
      } else {
        if (f.type !== undefined) fail(`second TYPE for ${n}`)
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) fail('unknown type')
        f.type = rest
      }
      if (current && current !== f) current.closed = true
      current = f
      return
    }
    if (line.startsWith('#')) return
    const m = line.match(sampleLine)
    if (!m) fail('not a sample')
    const [, sampleName, labelText = '', value] = m
    const labels = {}
    for (const [, k, v] of labelText.matchAll(new RegExp(`(${labelName})=(${labelValue})`, 'g'))) {
      if (Object.hasOwn(labels, k)) fail(`label ${k} twice`)
      labels[k] = JSON.parse(v)
    }
    // The family is the current one if the sample name fits its type, else one of that name.
    const fits = (f) => (suffixes[f.type] ?? ['']).some((suffix) => f.name + suffix === sampleName)
    const f = current && fits(current) ? current : family(sampleName)
    if (!fits(f)) fail(`${sampleName} is not a sample of the ${f.type} ${f.name}`)
    if (f.closed) fail(`the samples of ${f.name} are not in one group`)
    if (current && current !== f) current.closed = true
    current = f
    const series = `${sampleName}${JSON.stringify(Object.entries(labels).sort())}`
    if (seen.has(series)) fail('the same series twice')
    seen.add(series)
    f.samples.push({ name: sampleName, labels, value: /nan/i.test(value) ? NaN : Number(value.replace(/inf(inity)?$/i, 'Infinity')) })
  })
  return [...families.values()].map(({ closed, ...f }) => f)
}

/** The problems `promtool check metrics` reports for these families' names and help ([] if none). */
export function lintExposition (families) {
  const problems = []
  const problem = (f, why) => problems.push(`${f.name} ${why}`)
  for (const f of families) {
    if (!f.help) problem(f, 'no help text')
    if (f.type === undefined) problem(f, 'no TYPE line')
    if (/[a-z][A-Z]/.test(f.name)) problem(f, 'metric names should be written in snake_case not camelCase')
    if (f.type === 'counter' && !f.name.endsWith('_total')) problem(f, 'counter metrics should have "_total" suffix')
    if (f.type !== 'counter' && f.name.endsWith('_total')) problem(f, 'non-counter metrics should not have "_total" suffix')
    if (f.type !== 'histogram' && f.type !== 'summary') {
      for (const suffix of ['_count', '_sum', '_bucket']) {
        if (f.name.endsWith(suffix)) problem(f, `non-histogram and non-summary metrics should not have "${suffix}" suffix`)
      }
    }
    for (const s of f.samples) {
      for (const label of Object.keys(s.labels)) if (/[a-z][A-Z]/.test(label)) problem(f, `label names should be written in snake_case not camelCase: ${label}`)
    }
  }
  return problems
}

/** promtool's path, if it is installed. */
export function promtool () {
  const path = process.env.PROMTOOL ?? 'promtool'
  return spawnSync(path, ['--version'], { stdio: 'ignore' }).status === 0 ? path : undefined
}

/** The families a registry with privsep's metrics holds, after the gauge (named `gauge`). */
export const programFamilies = [
  ['privsep_connections_accepted_total', 'counter'],
  ['privsep_connections_closed_total', 'counter'],
  ['privsep_connection_duration_seconds', 'histogram'],
  ['privsep_generation', 'gauge'],
  ['privsep_upgrades_total', 'counter'],
  ['privsep_broker_requests_total', 'counter'],
  ['privsep_drain_duration_seconds', 'gauge']
]
