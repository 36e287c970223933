// The `privsep` command: `privsep print-service [options] -- COMMAND [ARG...]` prints a
// systemd unit for a privsep program (src/service.ts).
import { serviceUnit } from './service.js'

const usage = `usage: privsep print-service --user USER [--description TEXT] [--runtime-directory NAME] -- COMMAND [ARG...]
  prints a systemd unit (Type=notify, hardened) that runs COMMAND as root; the program drops to
  USER itself with forkExecUnprivileged. Install it as /etc/systemd/system/NAME.service.`

function main (args: string[]): number {
  const fs = process.getBuiltinModule('node:fs')
  const path = process.getBuiltinModule('node:path')
  const [verb, ...rest] = args
  const split = rest.indexOf('--')
  if (verb !== 'print-service' || split < 0 || split === rest.length - 1) {
    process.stderr.write(usage + '\n')
    return verb === '--help' || verb === '-h' ? 0 : 2
  }
  const flags = new Map<string, string>()
  const given = rest.slice(0, split)
  for (let i = 0; i < given.length; i += 2) {
    if (!['--user', '--description', '--runtime-directory'].includes(given[i]) || given[i + 1] === undefined) {
      process.stderr.write(`privsep: unknown or incomplete option ${given[i]}\n${usage}\n`)
      return 2
    }
    flags.set(given[i], given[i + 1])
  }
  const user = flags.get('--user')
  if (user === undefined) {
    process.stderr.write(`privsep: --user is required\n${usage}\n`)
    return 2
  }
  const [command, ...commandArgs] = rest.slice(split + 1)
  // The command by PATH, as a shell would find it; a script argument that exists, absolute.
  const found = command.includes('/')
    ? path.resolve(command)
    : (process.env.PATH ?? '').split(':').map((dir) => path.join(dir, command)).find((file) => fs.existsSync(file))
  if (found === undefined) {
    process.stderr.write(`privsep: ${command} is not on PATH\n`)
    return 2
  }
  const absolute = commandArgs.map((arg) => !arg.startsWith('-') && fs.existsSync(arg) ? path.resolve(arg) : arg)
  process.stdout.write(serviceUnit({
    command: [fs.realpathSync(found), ...absolute],
    user,
    description: flags.get('--description'),
    workingDirectory: process.cwd(),
    runtimeDirectory: flags.get('--runtime-directory')
  }))
  return 0
}

try {
  process.exitCode = main(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`privsep: ${(err as Error).message}\n`)
  process.exitCode = 2
}
