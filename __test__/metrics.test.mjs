// The connection gauge as Prometheus reads it: the registry's scrape output, with real
// connections, parsed by a small reader of the text exposition format and checked against
// the naming rules `promtool check metrics` applies (a gauge is not `…_count`, `…_sum`,
// `…_bucket` or `…_total`; every family has HELP and TYPE). Where promtool is installed
// (on PATH, or PROMTOOL=path) the same text goes through promtool too.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import net from 'node:net'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import pino from 'pino'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { ConnectionRegistry } from 'privsep'
import { lintExposition, parseExposition, programFamilies, promtool } from './exposition.mjs'

const quietLogger = () => pino({ name: 'test' }, new Writable({ write (_chunk, _enc, cb) { cb() } }))

/** Scrape output of a registry with privsep's gauge and real connections on two label pairs. */
async function scrapeWithConnections (options = {}) {
  const registry = new Registry()
  const connections = new ConnectionRegistry({ registry, logger: quietLogger(), ...options })
  let n = 0
  const server = net.createServer((socket) => connections.register(socket, 'smtp', n++ === 0 ? 'public' : 'submission'))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const clients = []
  for (let i = 0; i < 3; i++) {
    const client = net.connect(server.address().port, '127.0.0.1')
    await new Promise((resolve) => client.on('connect', resolve))
    clients.push(client)
  }
  for (let i = 0; i < 500 && connections.size < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(connections.size, 3)
  const text = await registry.metrics()
  for (const client of clients) client.destroy()
  await connections.done()
  server.close()
  return text
}

test('the default gauge privsep_connections and the program-wide families follow Prometheus naming rules, with HELP and TYPE', async (t) => {
  const text = await scrapeWithConnections()
  const families = parseExposition(text)
  assert.deepEqual(lintExposition(families), [])
  assert.deepEqual(families.map((f) => [f.name, f.type]), [['privsep_connections', 'gauge'], ...programFamilies])
  assert.deepEqual(families[0].samples.map((s) => [s.labels, s.value]), [
    [{ protocol: 'smtp', listener: 'public' }, 1],
    [{ protocol: 'smtp', listener: 'submission' }, 2]
  ])
  const tool = promtool()
  await t.test('promtool check metrics', { skip: !tool && 'promtool is not installed' }, () => {
    const result = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8' })
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`)
  })
})

test('the metricName option still names the gauge', async () => {
  const families = parseExposition(await scrapeWithConnections({ metricName: 'app_open_connections' }))
  assert.deepEqual(families.map((f) => [f.name, f.type]), [['app_open_connections', 'gauge'], ...programFamilies])
  assert.deepEqual(lintExposition(families), [])
})

test('the reader and the rules refuse what promtool refuses and accept prom-client\'s own metrics', async () => {
  const gauge = (n) => `# HELP ${n} Open connections.\n# TYPE ${n} gauge\n${n}{protocol="smtp"} 1\n`
  // The old default name, and the other suffixes a gauge must not have.
  for (const n of ['privsep_connections_count', 'a_sum', 'a_bucket', 'a_total']) {
    assert.match(lintExposition(parseExposition(gauge(n))).join('\n'), /should not have "_(count|sum|bucket|total)" suffix/, n)
  }
  assert.deepEqual(lintExposition(parseExposition('# TYPE a gauge\na 1\n')), ['a no help text'])
  assert.deepEqual(lintExposition(parseExposition('# HELP a x\na 1\n')), ['a no TYPE line'])
  assert.throws(() => parseExposition('# HELP a x\n# TYPE a gauge\na 1\n# TYPE a gauge\n'), /TYPE after the samples/)
  assert.throws(() => parseExposition('# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n'), /not in one group/)
  assert.throws(() => parseExposition('# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'), /the same series twice/)
  assert.throws(() => parseExposition('# TYPE a gauge\na{x=1} 1\n'), /not a sample/)
  // prom-client's default metrics: counters and histograms read and pass; its gauges named
  // `nodejs_active_*_total` do not, for promtool too (which, where installed, must agree).
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const text = await registry.metrics()
  const families = parseExposition(text)
  assert.ok(families.some((f) => f.type === 'histogram') && families.some((f) => f.type === 'counter'))
  const problems = lintExposition(families)
  const types = new Map(families.map((f) => [f.name, f.type]))
  for (const p of problems) assert.match(p, /^\S+_total non-counter metrics should not have "_total" suffix$/)
  for (const p of problems) assert.equal(types.get(p.split(' ')[0]), 'gauge')
  const tool = promtool()
  if (tool) {
    const result = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8' })
    assert.deepEqual(problems.sort(), `${result.stdout}${result.stderr}`.split('\n').filter(Boolean).sort())
  }
})
