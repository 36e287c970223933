// Property tests of every parser the JavaScript side reaches (issue 13): addresses
// (parseAddress), the environment protocol (restore), LISTEN_FDNAMES (activated) and broker
// frames (decodeMessage). Values are encoded here from docs/PROTOCOL.md, apart from the Rust
// encoders: what the grammar allows must decode to what was encoded, anything else must be
// refused with the parser's code, and nothing may throw but a PrivsepError.
// PRIVSEP_FUZZ_CASES (10,000 by default; `npm run fuzz` sets 1,000,000) and PRIVSEP_FUZZ_SEED.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import fc from 'fast-check'
import { createRequire } from 'node:module'
import { importSource, percentEncode, report } from './helpers.mjs'

// The built addon, as package.test.mjs loads it; its errors go through the loader's own
// conversion (src/errors.ts), which must make each of them a PrivsepError.
const { platformTriple } = await importSource('native')
const { fromNative, PrivsepError } = await importSource('errors')
const { parseSandboxState } = await importSource('sandbox')
const raw = createRequire(import.meta.url)(new URL(`../privsep.${platformTriple()}.node`, import.meta.url).pathname)
const addon = Object.fromEntries(Object.entries(raw).map(([name, fn]) => [name, (...args) => {
  try { return fn(...args) } catch (err) { throw fromNative(err) }
}]))
const numRuns = Number(process.env.PRIVSEP_FUZZ_CASES ?? 10_000)
const seed = process.env.PRIVSEP_FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.PRIVSEP_FUZZ_SEED)
const options = { numRuns, seed }
const counts = { tried: 0, refused: 0, lost: 0 }
// The report counts cases (numRuns per property, whatever the seed): a case is survived when
// every input it made was parsed to the grammar or refused with the right code.
let cases = 0
after(() => {
  report('bad inputs', { tried: cases, refused: cases, lost: counts.lost })
  process.stdout.write(`# parsers: ${numRuns} cases per property, seed ${seed}; ${counts.tried} hostile inputs, ${counts.refused} refused or parsed to the grammar, ${counts.lost} lost\n`)
})

/** fc.assert, counting the cases it ran. */
function check (property, parameters) {
  fc.assert(property, parameters)
  cases += parameters.numRuns
}

/** The code `fn` throws, asserting it is a PrivsepError; undefined when it returns. */
function codeOf (fn) {
  try {
    fn()
    return undefined
  } catch (err) {
    assert.ok(err instanceof PrivsepError, `not a PrivsepError: ${err?.stack ?? err}`)
    return err.code
  }
}

/**
 * A hostile input: counted, and if refused its code must be one of `codes`; if accepted the
 * caller checks it is in the grammar (so it counts as survived, `refused` in the report).
 */
function refusedWith (code, codes) {
  counts.tried++
  if (code === undefined) { counts.refused++; return false }
  if (codes.includes(code)) counts.refused++; else counts.lost++
  assert.ok(codes.includes(code), `refused with ${code}, not ${codes.join(' or ')}`)
  return true
}

// ---- addresses ---------------------------------------------------------------------------

/** RFC 5952, as docs/PROTOCOL.md writes an IPv6 address. */
function ipv6 (groups) {
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`
  }
  let best = [0, 0]
  for (let i = 0; i < 8;) {
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > best[1]) best = [i, j - i]
    i = j === i ? i + 1 : j
  }
  const hex = (part) => part.map((g) => g.toString(16)).join(':')
  return best[1] < 2 ? hex(groups) : `${hex(groups.slice(0, best[0]))}::${hex(groups.slice(best[0] + best[1]))}`
}

const port = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 65535 }))
const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }))
const v4 = fc.tuple(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), port)
  .map(([octets, p]) => `${octets.join('.')}:${p}`)
const v6 = fc.tuple(fc.array(group, { minLength: 8, maxLength: 8 }), port, fc.option(fc.integer({ min: 1, max: 2 ** 32 - 1 })))
  .map(([groups, p, scope]) => {
    if (scope !== null) groups[0] = 0xfe80
    return `[${ipv6(groups)}${scope !== null ? `%${scope}` : ''}]:${p}`
  })
/** [network, canonical address] */
const address = fc.oneof(
  fc.tuple(fc.constantFrom('tcp', 'tcp4', 'udp', 'udp4'), v4),
  fc.tuple(fc.constantFrom('tcp', 'tcp6', 'udp', 'udp6'), v6),
  fc.tuple(fc.constant('unix'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }).filter((p) => !p.includes('\0') && Buffer.byteLength(p) <= 103))
)
/** Text near the grammars: separators, escapes, digits, signs, scope ids, non-ASCII. */
const noise = fc.array(fc.constantFrom('0', '1', '9', 'a', 'F', ':', '::', '[', ']', '%', '%2', '%2c', '%2C', '+', '-', ',', '=', '/', '.', ' ', '\0', 'é', '\u{fffd}', 'fe80', '65536', '00'), { maxLength: 6 }).map((a) => a.join(''))
/** `text` with `piece` put in at `at` (a fraction of its length), or a character removed. */
const edit = (text, piece, at, remove) => {
  const i = Math.floor(at * (text.length + 1))
  return remove && i < text.length ? text.slice(0, i) + text.slice(i + 1) : text.slice(0, i) + piece + text.slice(i)
}

test('addresses: the canonical form parses to itself, anything else is refused or parses to a canonical form', () => {
  check(fc.property(address, noise, fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), ([network, text], piece, at, remove) => {
    assert.equal(addon.parseAddress(network, text), text)
    const edited = edit(text, piece, at, remove)
    let canonical
    const code = codeOf(() => { canonical = addon.parseAddress(network, edited) })
    if (!refusedWith(code, ['ERR_PRIVSEP_INVALID_ARGUMENT'])) {
      assert.equal(addon.parseAddress(network, canonical), canonical)
      if (network !== 'unix') assert.match(edited.slice(edited.lastIndexOf(':') + 1), /^(0|[1-9][0-9]*)$/, edited)
    }
  }), options)
})

// ---- the environment protocol --------------------------------------------------------------

/** [fd, kind, value] entries, fds from 3 in order, no socket twice. */
const entries = fc.uniqueArray(fc.oneof(address, fc.tuple(fc.constant('file'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((p) => !p.includes('\0')))),
  { maxLength: 4, selector: ([kind, value]) => `${kind} ${value}` })
  .map((list) => list.map(([kind, value], i) => [3 + i, kind, value]))
const files = (list) => list.map(([fd, kind, value]) => `${fd}=${kind}:${percentEncode(value)}`).join(',')
/** What restore may say about a descriptor once the variables parsed: this process's fds. */
const afterParse = ['EBADF', 'ERR_PRIVSEP_NOT_SOCKET', 'ERR_PRIVSEP_SOCKET_TYPE', 'ERR_PRIVSEP_NOT_LISTENING', 'ERR_PRIVSEP_SOCKET_FAMILY', 'ERR_PRIVSEP_SOCKET_ADDRESS', 'ERR_PRIVSEP_NOT_FILE']
const ppid = 4242

test('PRIVSEP_*: what the spec encodes parses, anything else is ERR_PRIVSEP_ENV_MALFORMED or _DUPLICATE', () => {
  check(fc.property(entries, noise, fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), (list, piece, at, remove) => {
    const encoded = files(list)
    let restored
    const code = codeOf(() => { restored = addon.restore(String(ppid), String(list.length), encoded, ppid) })
    if (code === undefined) assert.deepEqual(restored[0], list)
    else assert.ok(afterParse.includes(code), `${encoded}: ${code}`)
    const edited = edit(encoded, piece, at, remove)
    const count = edited === '' ? 0 : edited.split(',').length
    const editedCode = codeOf(() => addon.restore(String(ppid), String(count), edited, ppid))
    if (!refusedWith(afterParse.includes(editedCode) ? undefined : editedCode, ['ERR_PRIVSEP_ENV_MALFORMED', 'ERR_PRIVSEP_ENV_DUPLICATE'])) {
      // Accepted: then every entry is what the spec's encoder writes.
      for (const item of edited === '' ? [] : edited.split(',')) {
        const entry = /^([1-9][0-9]*)=(tcp|tcp4|tcp6|udp|udp4|udp6|unix|file):(.*)$/s.exec(item)
        assert.ok(entry, `${edited}: ${item}`)
        assert.equal(percentEncode(decodeURIComponent(entry[3])), entry[3], edited)
      }
    }
  }), options)
})

test('PRIVSEP_* numbers: digits without sign or leading zero, else ERR_PRIVSEP_ENV_MALFORMED', () => {
  check(fc.property(noise, (text) => {
    const code = codeOf(() => addon.restore(text, '0', '', ppid))
    if (text === String(ppid)) return
    refusedWith(code, /^(0|[1-9][0-9]*)$/.test(text) && Number(text) < 2 ** 32 ? ['ERR_PRIVSEP_PARENT_MISMATCH'] : ['ERR_PRIVSEP_ENV_MALFORMED'])
  }), options)
})

// ---- LISTEN_FDNAMES ------------------------------------------------------------------------

const fdname = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)).filter((c) => c !== ':'), minLength: 1, maxLength: 20 })
const validNames = (text) => text === '' || text.split(':').every((n) => n.length >= 1 && n.length <= 255 && /^[\x20-\x39\x3b-\x7e]+$/.test(n))

test('LISTEN_FDNAMES: names the grammar allows parse, anything else is ERR_PRIVSEP_ACTIVATION_MALFORMED', () => {
  const pid = process.pid
  check(fc.property(fc.array(fdname, { maxLength: 4 }), noise, fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), (names, piece, at, remove) => {
    for (const text of [names.join(':'), edit(names.join(':'), piece, at, remove)]) {
      const count = text === '' ? 0 : text.split(':').length
      let found
      const code = codeOf(() => { found = addon.activated(String(pid), String(count), text, pid) })
      // Past the names, the descriptors 3.. of this process are checked: not ours to know.
      const parsed = code === undefined || code === 'ERR_PRIVSEP_NOT_SOCKET' || code === 'EBADF'
      if (text === names.join(':')) assert.ok(parsed, `${JSON.stringify(text)}: ${code}`)
      else if (!refusedWith(parsed ? undefined : code, ['ERR_PRIVSEP_ACTIVATION_MALFORMED'])) assert.ok(validNames(text), JSON.stringify(text))
      if (found) assert.deepEqual(found.map(([, name]) => name), text === '' ? [] : text.split(':'))
    }
  }), options)
})

// The sandbox state the monitor gives the child (docs/PROTOCOL.md, "The sandbox").
const sandboxLine = /^v1 landlock:[y-] seccomp:[y-] abi:(?:0|[1-9][0-9]{0,3}) required:[01] missing:(?:(?:refer|truncate|net|ioctl_dev|scopes|landlock)(?:,(?:refer|truncate|net|ioctl_dev|scopes|landlock))*)?$/
/** The code parseSandboxState throws for `text` (its bundle has its own PrivsepError class). */
function sandboxCode (text) {
  try {
    parseSandboxState(text, true)
    return undefined
  } catch (err) {
    assert.equal(err?.constructor?.name, 'PrivsepError', `not a PrivsepError: ${err?.stack ?? err}`)
    return err.code
  }
}
test('PRIVSEP_SANDBOX: the lines the spec allows parse to a state that says what is missing, anything else is ERR_PRIVSEP_ENV_MALFORMED', () => {
  const missingNames = ['refer', 'truncate', 'net', 'ioctl_dev', 'scopes', 'landlock']
  const line = fc.tuple(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 9999 }), fc.boolean(), fc.subarray(missingNames))
    .map(([landlock, seccomp, abi, required, missing]) => `v1 landlock:${landlock ? 'y' : '-'} seccomp:${seccomp ? 'y' : '-'} abi:${abi} required:${required ? 1 : 0} missing:${missing.join(',')}`)
  check(fc.property(line, noise, fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), (text, piece, at, remove) => {
    const state = parseSandboxState(text, true)
    assert.equal(state.landlock, text.includes('landlock:y'))
    assert.equal(state.seccomp, text.includes('seccomp:y'))
    assert.equal(state.state === 'full', state.landlock && state.seccomp && text.endsWith('missing:'), text)
    assert.equal(state.state === 'none', !state.landlock && !state.seccomp, text)
    const edited = edit(text, piece, at, remove)
    if (edited === text) return
    if (!refusedWith(sandboxCode(edited), ['ERR_PRIVSEP_ENV_MALFORMED'])) assert.ok(sandboxLine.test(edited), JSON.stringify(edited))
  }), options)
})

// ---- broker frames -------------------------------------------------------------------------

const u32 = (n) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24]
const u16string = (text) => { const b = [...Buffer.from(text, 'utf8')]; return [b.length & 255, b.length >> 8, ...b] }
const text = fc.string({ unit: 'grapheme', maxLength: 20 }).filter((t) => !t.includes('\0'))
const id = fc.integer({ min: 0, max: 2 ** 32 - 1 })
const request = fc.oneof(
  fc.tuple(id, text.filter((t) => t !== '')).map(([i, path]) => [1, 1, ...u32(i), ...u16string(path)]),
  fc.tuple(id, address, id, id).map(([i, [network, addr], backlog, mode]) => [1, 2, ...u32(i), ...u16string(network), ...u16string(addr), ...u32(backlog), ...u32(mode)]),
  fc.tuple(id, text).map(([i, state]) => [1, 3, ...u32(i), ...u16string(state)]),
  id.map((i) => [1, 4, ...u32(i)])
)
const reply = fc.tuple(fc.integer({ min: 0, max: 2 }), id, id, text, text)
  .map(([status, i, errno, code, message]) => [1, status, ...u32(i), ...u32(errno), ...u16string(code), ...u16string(message)])
const byteEdit = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom('set', 'insert', 'remove', 'cut'))
const editBytes = (bytes, [byte, at, how]) => {
  const out = [...bytes]
  const i = Math.floor(at * out.length)
  if (how === 'set' && i < out.length) out[i] = byte
  else if (how === 'insert') out.splice(i, 0, byte)
  else if (how === 'remove') out.splice(i, 1)
  else out.length = i
  return out
}

for (const [format, frames] of [['request', request], ['reply', reply]]) {
  test(`broker ${format} frames: frames the spec encodes decode to themselves, edits are ERR_PRIVSEP_BROKER_MALFORMED or decode to a frame`, () => {
    check(fc.property(frames, byteEdit, fc.uint8Array({ maxLength: 40 }), (bytes, how, random) => {
      assert.deepEqual(addon.decodeMessage(format, bytes), bytes)
      for (const hostile of [editBytes(bytes, how), [...random]]) {
        let again
        const code = codeOf(() => { again = addon.decodeMessage(format, hostile) })
        if (!refusedWith(code, ['ERR_PRIVSEP_BROKER_MALFORMED'])) {
          assert.deepEqual(addon.decodeMessage(format, again), again)
          if (format === 'reply') assert.deepEqual(again, hostile)
        }
      }
    }), options)
  })
}
