// privsep inside a single executable application (Node's SEA): fixtures/sea-app.mjs bundled
// into one CommonJS script with esbuild, made a blob by `node --experimental-sea-config` and
// injected into a copy of this node with postject, the addon and the monitor beside it. The
// executable re-executes itself as nobody, which is then the application, not a node binary.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'
import { build } from 'esbuild'
import { fetchStream, fixtures, start, tempDir } from './helpers.mjs'

const root = path.join(fixtures, '..', '..')
const triple = fs.readdirSync(root).find((name) => /^privsep\.linux-.*\.node$/.test(name))?.slice('privsep.'.length, -'.node'.length)

/** Runs the single executable `app` with `args` (helpers.start reads its JSON lines). */
const startApp = (app, args) => start(app, undefined, { argv: [app, ...args] })

describe('a single executable application', () => {
  const dir = tempDir('privsep-sea-')
  const app = path.join(dir, 'app')
  const bare = path.join(tempDir('privsep-sea-bare-'), 'app')
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true })
    fs.rmSync(path.dirname(bare), { recursive: true, force: true })
  })

  before(async () => {
    assert.ok(triple, 'no local build of the addon: npm run build')
    const script = path.join(dir, 'app.cjs')
    await build({
      entryPoints: [path.join(fixtures, 'sea-app.mjs')],
      bundle: true, format: 'cjs', platform: 'node', target: 'node20', outfile: script,
      // privsep's ES module reads import.meta, which is empty in a CommonJS bundle: in a SEA
      // it does not need it (it looks beside the executable).
      logLevel: 'error', logOverride: { 'empty-import-meta': 'silent' }
    })
    const config = path.join(dir, 'sea-config.json')
    const blob = path.join(dir, 'app.blob')
    fs.writeFileSync(config, JSON.stringify({ main: script, output: blob, disableExperimentalSEAWarning: true }))
    execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: 'ignore' })
    fs.copyFileSync(process.execPath, app)
    // postject's command (as Node's docs use it), in a process of its own: it prints harmless
    // warnings about the ELF notes of node that would clutter the test output.
    execFileSync(process.execPath, [createRequire(import.meta.url).resolve('postject/dist/cli.js'),
      app, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { stdio: 'pipe' })
    fs.chmodSync(app, 0o755)
    fs.copyFileSync(path.join(root, `privsep.${triple}.node`), path.join(dir, `privsep.${triple}.node`))
    fs.copyFileSync(path.join(root, `privsep-monitor.${triple}`), path.join(dir, `privsep-monitor.${triple}`))
    fs.chmodSync(path.join(dir, `privsep-monitor.${triple}`), 0o755)
    // The same executable in a folder with nothing beside it.
    fs.linkSync(app, bare)
  })

  test('it starts as root, drops to nobody, serves port 98 and exits as its child did', async () => {
    const run = startApp(app, ['98', '7', 'an argument', '--not-a-node-option'])
    try {
      const ready = await run.next(30_000)
      // The child is the application itself, with the user's arguments only, once each.
      assert.deepEqual(ready, { ready: true, uid: 65534, argv: ['98', '7', 'an argument', '--not-a-node-option'], execPath: app })
      assert.equal(await fetchStream({ host: '127.0.0.1', port: 98 }), 'uid 65534')
    } finally {
      run.child.kill('SIGTERM') // the monitor forwards it; the child exits 7
    }
    assert.deepEqual(await run.exited, { code: 7, signal: null })
  })

  test('without the binaries beside it: ERR_PRIVSEP_NATIVE_LOAD says where to put them', async () => {
    const run = startApp(bare, ['98', '0'])
    const line = await run.next(30_000)
    assert.equal(line.code, 'ERR_PRIVSEP_NATIVE_LOAD')
    assert.ok(line.privsepError)
    assert.match(line.message, new RegExp(`single executable application: put privsep\\.${triple}\\.node and privsep-monitor\\.${triple} beside it`))
    assert.ok(line.message.includes(path.join(path.dirname(bare), `privsep.${triple}.node`)), line.message)
    assert.deepEqual(await run.exited, { code: 1, signal: null })
  })

  test('the default logger, without pino beside it: ERR_PRIVSEP_UNSUPPORTED says what to do', async () => {
    const run = startApp(app, ['lifecycle', '0'])
    const line = await run.next(30_000)
    assert.equal(line.code, 'ERR_PRIVSEP_UNSUPPORTED')
    assert.ok(line.privsepError)
    assert.match(line.message, /cannot load pino in this single executable application .*configureLifecycle\(\{ logger \}\).*node_modules\/pino beside/)
    assert.deepEqual(await run.exited, { code: 1, signal: null })
  })
})
