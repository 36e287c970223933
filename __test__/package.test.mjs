// The package as users load it: ESM and CommonJS see the same API, the types compile against
// the documented usage, and the hand-kept native types name exactly what the addon exports.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { test } from 'node:test'
import * as esm from 'privsep'
import { importSource } from './helpers.mjs'

const require = createRequire(import.meta.url)
const root = new URL('../', import.meta.url).pathname

test('ESM and CommonJS imports expose the same functions', () => {
  const cjs = require('privsep')
  for (const name of ['listen', 'openPrivileged', 'forkExecUnprivileged', 'restorePassedFiles', 'cleanupPassedFiles', 'setFilesImmediate']) {
    assert.equal(typeof esm[name], 'function', `ESM export ${name}`)
    assert.equal(cjs[name], esm[name], `CommonJS export ${name}`)
  }
  assert.deepEqual(Object.keys(esm).filter((k) => k !== 'default' && k !== '__esModule').sort(), Object.keys(cjs).sort())
})

test('the addon exports exactly the functions src/native.ts declares', async () => {
  const { nativeFunctions, platformTriple } = await importSource('native')
  const addon = require(`${root}privsep.${platformTriple()}.node`)
  assert.deepEqual(Object.keys(addon).sort(), [...nativeFunctions].sort())
  for (const name of nativeFunctions) assert.equal(typeof addon[name], 'function', name)
})

test('the published types accept the documented usage', () => {
  const tsc = `${root}node_modules/.bin/tsc`
  execFileSync(tsc, ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', '--skipLibCheck', `${root}__test__/fixtures/types-usage.ts`], { cwd: root, stdio: 'pipe' })
})
