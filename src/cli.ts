// The `privsep` command:
//   privsep print-service [options] -- COMMAND [ARG...]   a systemd unit (src/service.ts)
//   privsep reload (--pid PID | --pid-file FILE) [...]   an upgrade, returning once it is done
import { native } from './native.js'
import { serviceUnit } from './service.js'

const usage = `usage:
  privsep print-service --user USER [--description TEXT] [--runtime-directory NAME]
                        [--working-directory DIR] -- COMMAND [ARG...]
    prints a systemd unit (Type=notify, hardened) that runs COMMAND as root; the program drops to
    USER itself with forkExecUnprivileged. Install it as /etc/systemd/system/NAME.service.
  privsep reload (--pid PID | --pid-file FILE) [--signal SIGUSR2] [--timeout SECONDS]
    starts an upgrade of the privsep program whose monitor (its root process) is PID and
    returns once the new generation serves (exit 0), or says why not (exit 1). Default timeout 90.`

const fs = process.getBuiltinModule('node:fs')
const path = process.getBuiltinModule('node:path')
const os = process.getBuiltinModule('node:os')

/** `--flag value` pairs from `given`, only the `known` flags; a string is the error to print. */
function flags (given: string[], known: string[]): Map<string, string> | string {
  const found = new Map<string, string>()
  for (let i = 0; i < given.length; i += 2) {
    if (!known.includes(given[i]) || given[i + 1] === undefined) return `unknown or incomplete option ${given[i]}`
    found.set(given[i], given[i + 1])
  }
  return found
}

/** Folders a unit's own sandboxing hides from the program: PrivateTmp= gives it new ones. */
const hidden = ['/tmp', '/var/tmp']

function printService (rest: string[]): number {
  const split = rest.indexOf('--')
  if (split < 0 || split === rest.length - 1) return fail('print-service needs -- COMMAND')
  const given = flags(rest.slice(0, split), ['--user', '--description', '--runtime-directory', '--working-directory'])
  if (typeof given === 'string') return fail(given)
  const user = given.get('--user')
  if (user === undefined) return fail('--user is required')
  const [command, ...commandArgs] = rest.slice(split + 1)
  // The command by PATH, as a shell would find it; a script argument that exists, absolute.
  const found = command.includes('/')
    ? path.resolve(command)
    : (process.env.PATH ?? '').split(':').map((dir) => path.join(dir, command)).find((file) => fs.existsSync(file))
  if (found === undefined) return fail(`${command} is not on PATH`, 2)
  const absolute = commandArgs.map((arg) => !arg.startsWith('-') && fs.existsSync(arg) ? path.resolve(arg) : arg)
  // The program's own folder: the script's (the first argument that is a file), else the
  // command's. Not the current folder, which may be one the unit hides (PrivateTmp=).
  const script = absolute.find((arg) => arg.startsWith('/') && fs.statSync(arg, { throwIfNoEntry: false })?.isFile() === true)
  const chosen = given.get('--working-directory')
  const workingDirectory = chosen !== undefined ? path.resolve(chosen) : path.dirname(fs.realpathSync(script ?? found))
  for (const [what, file] of [['the working directory', workingDirectory], ['the command', found], ['the program', script]] as const) {
    const under = hidden.find((dir) => file !== undefined && (file === dir || file.startsWith(`${dir}/`)))
    if (under !== undefined) {
      return fail(`print-service: ${what} ${file} is under ${under}, which the unit's PrivateTmp=yes hides from the service: ` +
        'install the program elsewhere (say /opt or /srv), or pass --working-directory for the folder alone', 1)
    }
  }
  process.stdout.write(serviceUnit({
    command: [fs.realpathSync(found), ...absolute],
    user,
    description: given.get('--description'),
    workingDirectory,
    workingDirectoryChosen: chosen !== undefined,
    runtimeDirectory: given.get('--runtime-directory'),
    reload: [process.execPath, fs.realpathSync(process.argv[1])]
  }))
  process.stderr.write(`privsep print-service: WorkingDirectory=${workingDirectory} (${chosen !== undefined ? '--working-directory' : "the program's folder"})\n`)
  return 0
}

function reload (rest: string[]): number {
  const given = flags(rest, ['--pid', '--pid-file', '--signal', '--timeout'])
  if (typeof given === 'string') return fail(given)
  const pidFile = given.get('--pid-file')
  let text = given.get('--pid')
  if ((text === undefined) === (pidFile === undefined)) return fail('reload needs --pid PID or --pid-file FILE')
  if (pidFile !== undefined) {
    try {
      text = fs.readFileSync(pidFile, 'utf8').trim()
    } catch (err) {
      return fail(`reload: cannot read the pid file ${pidFile}: ${(err as Error).message}`, 1)
    }
  }
  const pid = Number(text)
  if (!/^[1-9]\d{0,9}$/.test(text ?? '') || pid > 2 ** 31 - 1) return fail(`reload: ${JSON.stringify(text)} is not a pid`)
  const signalName = given.get('--signal') ?? 'SIGUSR2'
  const signal = (os.constants.signals as Record<string, number>)[signalName]
  if (signal === undefined) return fail(`reload: ${signalName} is not a signal`)
  const seconds = Number(given.get('--timeout') ?? '90')
  if (!(seconds > 0 && seconds <= 86_400)) return fail(`reload: --timeout takes seconds, from 1 to 86400, not ${given.get('--timeout')}`)
  // A stale pid (a pid file left behind, a reused pid) must not get the signal: SIGUSR2
  // ends a process that does not catch it.
  let comm = ''
  try {
    comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return fail(`reload: there is no process ${pid}`, 1)
  }
  if (comm !== 'privsep-monitor') {
    return fail(`reload: process ${pid} is ${comm}, not privsep-monitor: signal the root process of a privsep program (the pid it logs at start, or systemd's MainPID)`, 1)
  }
  let answer: number | null
  try {
    answer = native().queueSignal(pid, signal, Math.round(seconds * 1000))
  } catch (err) {
    return fail(`reload: ${(err as Error).message}`, 1)
  }
  const outcome = answer === null
    ? `no answer from privsep-monitor ${pid} in ${seconds} s: the new generation may still be starting (is ${signalName} its upgrade signal?)`
    : answer > 0
      ? undefined
      : ({ 0: 'the upgrade failed: the new generation ended or was not ready in time, and the one before serves on (see the program\'s log)',
          '-1': 'an upgrade is under way already: try again once it is done',
          '-2': 'the program is stopping: no upgrade' } as Record<string, string>)[String(answer)] ?? `unknown answer ${answer}`
  if (outcome !== undefined) return fail(`reload: ${outcome}`, 1)
  process.stdout.write(`privsep reload: generation ${answer} of privsep-monitor ${pid} serves\n`)
  return 0
}

function fail (message: string, code = 2): number {
  process.stderr.write(code === 2 ? `privsep: ${message}\n${usage}\n` : `privsep: ${message}\n`)
  return code
}

function main (args: string[]): number {
  const [verb, ...rest] = args
  if (verb === 'print-service') return printService(rest)
  if (verb === 'reload') return reload(rest)
  process.stderr.write(usage + '\n')
  return verb === '--help' || verb === '-h' ? 0 : 2
}

try {
  process.exitCode = main(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`privsep: ${(err as Error).message}\n`)
  process.exitCode = 2
}
