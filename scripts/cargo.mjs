// How to reach the `libc` crate: crates.io when it answers (or is cached), else Debian's
// packaged crates in /usr/share/cargo/registry (apt-get install librust-libc-dev), through
// cargo's source replacement. Cargo.lock stays the ordinary crates.io lock either way.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

export const debianRegistry = '/usr/share/cargo/registry'

let chosen

/** Extra cargo arguments that select the crate source; [] when crates.io works. */
export function cargoSourceArgs (cargo = 'cargo') {
  if (chosen) return chosen
  const env = { ...process.env, CARGO_NET_RETRY: '0', CARGO_HTTP_TIMEOUT: '15' }
  const fetch = (...args) => spawnSync(cargo, ['fetch', '--locked', ...args], { env, stdio: 'ignore', timeout: 120_000 }).status === 0
  if (fetch('--offline') || fetch()) {
    chosen = []
  } else if (existsSync(debianRegistry)) {
    console.error(`privsep build: crates.io is unreachable; using Debian's crates in ${debianRegistry}`)
    chosen = ['--config', 'source.crates-io.replace-with="debian"', '--config', `source.debian.directory="${debianRegistry}"`]
  } else {
    throw new Error(`crates.io is unreachable and ${debianRegistry} is missing: apt-get install librust-libc-dev, or go online`)
  }
  return chosen
}

/** Runs a command, inheriting stdio; exits this process with its status if it fails. */
export function run (command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options })
  if (result.status !== 0) {
    console.error(`failed: ${command} ${args.join(' ')}`)
    process.exit(result.status ?? 1)
  }
}
