// Program-wide metrics (issue 22): counters that every generation of the program adds to, in
// the region the monitor creates (src/program-metrics.ts, docs/PROTOCOL.md). In-process first
// (two ProgramMetrics over one buffer stand for two generations; garbage in the buffer; a full
// key table), then real processes: three upgrades under load with a scrape every 100 ms, a
// failed upgrade, and a hostile generation that fills the region with garbage.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { Writable } from 'node:stream'
import { after, afterEach, test } from 'node:test'
import pino from 'pino'
import { Counter, Registry } from 'prom-client'
import { ConnectionRegistry, ProgramMetrics, maxSeries, programMetrics, registerProgramMetrics, regionSize } from 'privsep'
import { lintExposition, parseExposition, promtool } from './exposition.mjs'
import { alive, fixtures, httpLoad, readyLine, start, tempDir } from './helpers.mjs'

const quiet = () => pino({ name: 'test' }, new Writable({ write (_chunk, _enc, cb) { cb() } }))

/** The scrape of a registry holding `metrics`' families: parsed, linted, through promtool where installed. */
async function scrape (metrics) {
  const registry = new Registry()
  registerProgramMetrics(registry, metrics)
  const text = await registry.metrics()
  const families = parseExposition(text)
  assert.deepEqual(lintExposition(families), [])
  const tool = promtool()
  if (tool) {
    const result = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8' })
    assert.equal(`${result.status} ${result.stdout}${result.stderr}`, '0 ')
  }
  return { text, families }
}

/** Each sample of `families` as `name{labels}` → value. */
function samples (families) {
  const out = new Map()
  for (const f of families) for (const s of f.samples) out.set(`${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`, s.value)
  return out
}

/** A histogram is whole: buckets cumulative and non-decreasing, +Inf = _count, nothing negative or NaN. */
function assertValid (families) {
  for (const f of families) {
    for (const s of f.samples) assert.ok(Number.isFinite(s.value) && s.value >= 0, `${s.name} ${s.value}`)
    if (f.type !== 'histogram') continue
    const bySeries = new Map()
    for (const s of f.samples) {
      const { le, ...labels } = s.labels
      const key = JSON.stringify(labels)
      if (!bySeries.has(key)) bySeries.set(key, { buckets: [] })
      if (s.name.endsWith('_bucket')) bySeries.get(key).buckets.push(s.value)
      if (s.name.endsWith('_count')) bySeries.get(key).count = s.value
    }
    for (const { buckets, count } of bySeries.values()) {
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1])
      assert.equal(buckets.at(-1), count)
    }
  }
}

test('two generations over one region: a series either adds is found by the other, and every scrape sees the totals', async () => {
  const region = new ArrayBuffer(regionSize)
  const a = new ProgramMetrics()
  const b = new ProgramMetrics()
  assert.equal(a.attach(region), true)
  assert.equal(b.attach(region), true)
  a.series('smtp', 'public').accepted()
  b.series('smtp', 'public').accepted()
  b.series('https', 'web').accepted()
  a.series('smtp', 'public').closed(3, performance.now() - 50)
  for (const m of [a, b]) {
    const read = Object.fromEntries(m.read().map((s) => [`${s.protocol}/${s.listener}`, s]))
    assert.equal(read['smtp/public'].accepted, 2)
    assert.equal(read['https/web'].accepted, 1)
    assert.equal(read['smtp/public'].closed[3], 1)
    assert.equal(read['smtp/public'].buckets[3], 1, '50 ms: the 0.1 s bucket (le 0.01, 0.02, 0.05, 0.1)')
  }
  // The upgrade counts are the monitor's, written at byte 16 (region.rs UPGRADES_AT); any
  // generation reads them.
  new DataView(region).setBigUint64(16, 1n, true)
  new DataView(region).setBigUint64(24, 2n, true)
  assert.deepEqual(a.upgrades(), { succeeded: 1, failed: 2 })
  assert.deepEqual(b.upgrades(), { succeeded: 1, failed: 2 })
  const { text } = await scrape(a)
  assert.match(text, /privsep_connections_closed_total\{protocol="smtp",listener="public",reason="forced"\} 1\n/)
  assert.match(text, /privsep_connection_duration_seconds_bucket\{protocol="smtp",listener="public",le="0.1"\} 1\n/)
  assert.match(text, /privsep_upgrades_total\{result="failed"\} 2\n/)
})

test('a region of another layout is not used: that process counts alone', () => {
  const region = new ArrayBuffer(regionSize)
  new Int32Array(region)[0] = 12345
  const m = new ProgramMetrics()
  assert.equal(m.attach(region), false)
  assert.equal(m.shared, false)
  assert.equal(m.attach(new ArrayBuffer(regionSize - 8)), false)
})

test('garbage in the region: a scrape never throws, reads nothing negative, skips what does not decode and stays valid for promtool', async () => {
  for (let round = 0; round < 20; round++) {
    const region = new ArrayBuffer(regionSize)
    const writer = new ProgramMetrics()
    writer.attach(region)
    for (let i = 0; i < 5; i++) writer.series('http', `l${i}`).accepted()
    crypto.randomFillSync(new Uint8Array(region, 4)) // all but the layout word
    if (round % 2) {
      // Keys that look published, with lengths and bytes that mean nothing.
      const i32 = new Int32Array(region)
      for (let slot = 0; slot < maxSeries; slot++) i32[(256 + slot * 128) >> 2] = 2
    }
    const reader = new ProgramMetrics()
    assert.equal(reader.attach(region), true)
    // It counts on: its series is found or claimed, or kept in the process when the table is full.
    const mine = reader.series('http', `mine${round}`)
    mine.accepted()
    const { families } = await scrape(reader)
    assertValid(families)
    const accepted = families.find((f) => f.name === 'privsep_connections_accepted_total')
    assert.ok(accepted.samples.some((s) => s.labels.listener === `mine${round}` && s.value >= 1), 'its own series is reported')
  }
})

test('key entries that do not decode to [protocol, listener] are skipped, the others read', () => {
  const region = new ArrayBuffer(regionSize)
  const m = new ProgramMetrics()
  m.attach(region)
  const bytes = new Uint8Array(region)
  const i32 = new Int32Array(region)
  const keys = ['[1,2]', '"x"', '["a"]', '["a","b","c"]', '{"0":"a","1":"b"}', '["a",', Buffer.from([0x5b, 0xff, 0x5d]), '["ok","fine"]']
  keys.forEach((key, slot) => {
    const raw = typeof key === 'string' ? Buffer.from(key) : key
    const at = 256 + slot * 128
    bytes.set(raw, at + 8)
    i32[(at >> 2) + 1] = raw.length
    i32[at >> 2] = 2
  })
  assert.deepEqual(m.read().map((s) => [s.protocol, s.listener]), [['ok', 'fine']])
  // The series it adds goes after them, and is found again.
  m.series('tcp', 'new').accepted()
  m.series('tcp', 'new').accepted()
  assert.deepEqual(m.read().map((s) => [s.protocol, s.listener, s.accepted]), [['ok', 'fine', 0], ['tcp', 'new', 2]])
})

test('a full key table: the series past it are counted by this process alone, still reported', async () => {
  const m = new ProgramMetrics()
  for (let i = 0; i < maxSeries + 3; i++) m.series('tcp', `listener-${i}`).accepted()
  m.series('tcp', 'x'.repeat(200)).accepted() // labels too long for a key entry
  const read = m.read()
  assert.equal(read.length, maxSeries + 4)
  assert.ok(read.every((s) => s.accepted === 1))
  await scrape(m)
})

test('a metric of one of the program-wide names that privsep did not create: ERR_PRIVSEP_METRIC_CONFLICT', () => {
  const registry = new Registry()
  new Counter({ name: 'privsep_upgrades_total', help: 'someone else', registers: [registry] }) // eslint-disable-line no-new
  assert.throws(() => registerProgramMetrics(registry, new ProgramMetrics()), (err) => {
    assert.equal(err.code, 'ERR_PRIVSEP_METRIC_CONFLICT')
    assert.match(err.message, /privsep_upgrades_total/)
    return true
  })
})

test('closed connections are counted by reason, with their duration: closed, error, forced, unregistered', async () => {
  const connections = new ConnectionRegistry({ registry: false, logger: quiet() })
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const accepted = []
  server.on('connection', (s) => { s.on('error', () => {}); accepted.push(s) })
  const open = async (n) => {
    const clients = []
    for (let i = 0; i < n; i++) clients.push(net.connect(server.address().port, '127.0.0.1').on('error', () => {}))
    while (accepted.length < n) await new Promise((resolve) => setTimeout(resolve, 5))
    return [clients, accepted.splice(0)]
  }
  const label = `reasons-${process.pid}`
  const [c1, s1] = await open(3)
  for (const s of s1) connections.register(s, 'tcp', label)
  connections.unregister(s1[0])
  c1[1].end() // the peer closes
  s1[2].destroy(new Error('boom')) // an error
  for (let i = 0; i < 200 && connections.size > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  const [, s2] = await open(2)
  for (const s of s2) connections.register(s, 'tcp', label)
  connections.shutdown() // forced
  await connections.done()
  const series = programMetrics().read().find((s) => s.listener === label)
  assert.equal(series.accepted, 5)
  assert.deepEqual(series.closed, [1, 1, 0, 2, 1], 'closed, error, idle, forced, unregistered')
  assert.equal(series.buckets.reduce((a, b) => a + b, 0), 5)
  for (const c of c1) c.destroy()
  server.close()
})

// ---- real processes ----

const dir = tempDir('privsep-metrics-')
after(() => fs.rmSync(dir, { recursive: true, force: true }))
fs.mkdirSync(path.join(dir, 'node_modules'))
fs.symlinkSync(path.join(fixtures, '..', '..'), path.join(dir, 'node_modules', 'privsep'), 'dir')
fs.symlinkSync(path.join(fixtures, '..', '..', 'node_modules', 'prom-client'), path.join(dir, 'node_modules', 'prom-client'), 'dir')
const program = path.join(dir, 'metrics-upgrade.mjs')
const write = (version) => fs.writeFileSync(program, fs.readFileSync(path.join(fixtures, 'metrics-upgrade.mjs'), 'utf8').replace("const version = 'v1'", `const version = '${version}'`))
const flag = (name, on) => on ? fs.writeFileSync(path.join(dir, name), '') : fs.rmSync(path.join(dir, name), { force: true })
const runs = []
afterEach(() => {
  for (const run of runs.splice(0)) run.child.kill('SIGKILL')
  flag('hostile', false)
  flag('crash', false)
})
function begin (config) {
  const run = start(path.relative(fixtures, program), config)
  runs.push(run)
  return run
}
/** One scrape on a connection of its own: { generation, families }. */
const scrapeOf = (port) => new Promise((resolve, reject) => {
  http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
    let body = ''
    res.on('data', (c) => { body += c }).on('end', () => {
      try {
        const families = parseExposition(body)
        resolve({ text: body, generation: Number(body.match(/^# generation (\d+)/)[1]), families })
      } catch (err) { reject(err) }
    })
  }).on('error', reject)
})
const value = (families, name, labels = {}) => {
  for (const f of families) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value
    }
  }
  return undefined
}
const load = (port) => httpLoad(port, {
  clients: 8,
  answer: (status, body) => status === 200 && /^v\d \d+ \d+\n$/.test(body) ? body.split(' ').slice(0, 2).join(' ') : undefined
})

test('three upgrades under load, scraped every 100 ms: no counter ever decreases whichever generation answers, and the totals are the program\'s', { timeout: 120_000 }, async () => {
  write('v1')
  const run = begin({ address: '127.0.0.1:470' })
  const first = await readyLine(run)
  const traffic = load(470)
  const scrapes = []
  let scraping = true
  const scraper = (async () => {
    while (scraping) {
      scrapes.push(await scrapeOf(470))
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()
  const pids = [first.pid]
  for (const version of ['v2', 'v3', 'v4']) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    write(version)
    run.child.kill('SIGUSR2')
    const line = await readyLine(run)
    assert.equal(line.shared, true, 'the generation counts in the shared region')
    pids.push(line.pid)
  }
  // Until every old generation has drained and exited.
  for (let i = 0; i < 100 && pids.slice(0, -1).some(alive); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  await traffic.stop()
  await new Promise((resolve) => setTimeout(resolve, 300))
  scraping = false
  await scraper
  const last = await scrapeOf(470)
  scrapes.push(last)
  const { stats } = traffic
  assert.deepEqual(stats.failed, [])

  // Every counter and histogram sample: never lower than in the scrape before, never gone.
  const counted = (families) => families.filter((f) => f.type === 'counter' || f.type === 'histogram')
  const answeredBy = new Set()
  for (let i = 1; i < scrapes.length; i++) {
    const before = samples(counted(scrapes[i - 1].families))
    const now = samples(counted(scrapes[i].families))
    answeredBy.add(scrapes[i].generation)
    for (const [key, v] of before) {
      assert.ok(now.has(key), `scrape ${i} (generation ${scrapes[i].generation}): ${key} is gone`)
      assert.ok(now.get(key) >= v, `scrape ${i} (generation ${scrapes[i].generation} after ${scrapes[i - 1].generation}): ${key} went from ${v} to ${now.get(key)}`)
    }
    assertValid(scrapes[i].families)
  }
  console.log(`metrics under upgrades: ${scrapes.length} scrapes, answered by generations ${[...answeredBy].sort().join(',')}; ${stats.sent} requests, ${stats.fresh} on connections of their own`)
  assert.ok(answeredBy.size >= 3, 'scrapes were answered by several generations')
  assert.equal(last.generation, 4)
  assert.equal(value(last.families, 'privsep_generation'), 4)
  assert.equal(value(last.families, 'privsep_upgrades_total', { result: 'succeeded' }), 3)
  assert.equal(value(last.families, 'privsep_upgrades_total', { result: 'failed' }), 0)
  // Each request on a connection of its own, and each scrape, is one accepted connection at least.
  const accepted = value(last.families, 'privsep_connections_accepted_total', { protocol: 'http', listener: 'web' })
  assert.ok(accepted >= stats.fresh + scrapes.length, `accepted ${accepted} >= ${stats.fresh} + ${scrapes.length}`)
  // Everything the old generations accepted, they closed: their counts reached the region.
  const closed = ['closed', 'error', 'idle', 'forced', 'unregistered']
    .reduce((sum, reason) => sum + value(last.families, 'privsep_connections_closed_total', { protocol: 'http', listener: 'web', reason }), 0)
  const open = value(last.families, 'privsep_connections', { protocol: 'http', listener: 'web' })
  assert.equal(accepted - closed, open, 'accepted - closed = open in the generation that serves')
  assert.equal(value(last.families, 'privsep_connection_duration_seconds_count', { protocol: 'http', listener: 'web' }), closed)
  assert.ok(value(last.families, 'privsep_drain_duration_seconds') > 0, 'the last drain is reported by the next generation')
  assert.ok(value(last.families, 'privsep_broker_requests_total', { kind: 'notify', result: 'ok' }) >= 4, 'each ready() is a notify request')
  run.child.kill('SIGTERM')
  assert.deepEqual(await run.exited, { code: 0, signal: null })
})

test('a failed upgrade counts as failed at once (the monitor counts it), a later success as succeeded', { timeout: 60_000 }, async () => {
  write('v1')
  const run = begin({ address: '127.0.0.1:471', readyTimeoutMs: 3000 })
  await readyLine(run)
  flag('crash', true)
  run.child.kill('SIGUSR2')
  for (let i = 0; i < 50 && !/ended before it was ready/.test(run.stderr); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  assert.match(run.stderr, /generation 2 ended before it was ready/)
  const failed = await scrapeOf(471)
  assert.equal(failed.generation, 1, 'the first generation serves on')
  assert.equal(value(failed.families, 'privsep_upgrades_total', { result: 'failed' }), 1)
  assert.equal(value(failed.families, 'privsep_upgrades_total', { result: 'succeeded' }), 0)
  flag('crash', false)
  run.child.kill('SIGUSR2')
  assert.equal((await readyLine(run)).ready, 3)
  const { families, generation } = await scrapeOf(471)
  assert.equal(generation, 3)
  assert.equal(value(families, 'privsep_upgrades_total', { result: 'succeeded' }), 1)
  assert.equal(value(families, 'privsep_upgrades_total', { result: 'failed' }), 1)
  run.child.kill('SIGTERM')
  assert.deepEqual(await run.exited, { code: 0, signal: null })
})

test('a hostile generation cannot resize the region, and garbage it writes there leaves the monitor serving and the next generation consistent', { timeout: 60_000 }, async () => {
  write('v1')
  const run = begin({ address: '127.0.0.1:472', readyTimeoutMs: 5000 })
  await readyLine(run)
  flag('hostile', true)
  run.child.kill('SIGUSR2')
  let line
  do line = await run.next(40_000); while (line.truncate === undefined)
  assert.equal(line.truncate, 'EPERM', 'the region is sealed against resizing')
  const hostile = await readyLine(run)
  assert.equal(hostile.ready, 2)
  flag('hostile', false)
  // Scrapes of the garbage (the hostile generation's own, or generation 1's while it drains) never fail.
  for (let i = 0; i < 5; i++) assertValid((await scrapeOf(472)).families)
  // The monitor is unaffected: it still upgrades, and the next generation counts consistently.
  run.child.kill('SIGUSR2')
  assert.equal((await readyLine(run)).ready, 3)
  const before = await scrapeOf(472)
  assert.equal(before.generation, 3)
  assertValid(before.families)
  assert.deepEqual(lintExposition(before.families), [])
  const tool = promtool()
  if (tool) assert.equal(spawnSync(tool, ['check', 'metrics'], { input: before.text, encoding: 'utf8' }).status, 0)
  for (let i = 0; i < 5; i++) await scrapeOf(472)
  const afterwards = await scrapeOf(472)
  const key = { protocol: 'http', listener: 'web' }
  assert.ok(value(afterwards.families, 'privsep_connections_accepted_total', key) >= value(before.families, 'privsep_connections_accepted_total', key) + 6,
    'its own connections are counted from there on')
  assert.equal(value(afterwards.families, 'privsep_generation'), 3)
  run.child.kill('SIGTERM')
  assert.deepEqual(await run.exited, { code: 0, signal: null })
})
