// How to reach the `libc` crate: crates.io when it answers (or is cached), else Debian's
// packaged crates in /usr/share/cargo/registry (librust-libc-dev, installed with apt-get when
// missing and we are root), through cargo's source replacement. Cargo.lock stays the ordinary
// crates.io lock either way.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'

export const debianRegistry = '/usr/share/cargo/registry'

let chosen

/** Extra cargo arguments that select the crate source; [] when crates.io works. */
export function cargoSourceArgs (cargo = 'cargo') {
  if (chosen) return chosen
  const env = { ...process.env, CARGO_NET_RETRY: '0', CARGO_HTTP_TIMEOUT: '15' }
  const fetch = (...args) => spawnSync(cargo, ['fetch', '--locked', ...args], { env, stdio: 'ignore', timeout: 120_000 }).status === 0
  if (fetch('--offline') || fetch()) {
    chosen = []
  } else {
    const hasLibc = () => existsSync(debianRegistry) && readdirSync(debianRegistry).some((name) => name.startsWith('libc-'))
    if (!hasLibc()) aptInstall(['librust-libc-dev'], `crates.io is unreachable and ${debianRegistry} has no libc crate`)
    console.error(`privsep build: crates.io is unreachable; using Debian's crates in ${debianRegistry}`)
    chosen = ['--config', 'source.crates-io.replace-with="debian"', '--config', `source.debian.directory="${debianRegistry}"`]
  }
  return chosen
}

/**
 * Installs Debian packages the build needs, as root with apt-get (refreshing the package
 * lists if the first try fails); anywhere else, says what to install and stops.
 */
export function aptInstall (packages, why) {
  const canApt = process.getuid?.() === 0 && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0
  if (!canApt) {
    console.error(`privsep build: ${why}: install ${packages.join(' ')} (Debian: apt-get install ${packages.join(' ')}), or go online`)
    process.exit(1)
  }
  console.error(`privsep build: ${why}; installing ${packages.join(' ')} with apt-get`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const install = () => spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env }).status === 0
  if (install()) return
  run('apt-get', ['update', '-qq'], { env })
  if (!install()) {
    console.error(`privsep build: apt-get install ${packages.join(' ')} failed`)
    process.exit(1)
  }
}

/** Runs a command, inheriting stdio; exits this process with its status if it fails. */
export function run (command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options })
  if (result.status !== 0) {
    console.error(`failed: ${command} ${args.join(' ')}`)
    process.exit(result.status ?? 1)
  }
}
