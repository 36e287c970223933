// `privsep print-service`: a systemd unit for a privsep program, in the spirit of mox's
// `config printservice`. It starts as root (the program binds, opens and drops to its user
// itself), is Type=notify (the monitor sends READY=1 when the child calls ready()), and is
// hardened as far as a Node server under privsep survives (docs/SECURITY.md, "systemd").
import { PrivsepError } from './errors.js'

export interface ServiceOptions {
  /** The command and its arguments; the command an absolute path. */
  command: string[]
  /** The user the program drops to, for the unit's description. */
  user: string
  /** The unit's description. Default: the command. */
  description?: string
  /** The program's working directory. */
  workingDirectory: string
  /** True when the user chose the working directory; else it is the program's folder. */
  workingDirectoryChosen?: boolean
  /** node and the privsep command (dist/cli.js), absolute: ExecReload runs `privsep reload`. */
  reload: [node: string, cli: string]
  /** A folder under /run the program may write (unix sockets), e.g. its name. */
  runtimeDirectory?: string
  /** How many listeners systemd's file descriptor store keeps (FileDescriptorStoreMax=). Default 64. */
  fdStoreMax?: number
}

/** One ExecStart= word, quoted as systemd reads it: `$` and `%` doubled, quotes escaped. */
function word (text: string): string {
  const escaped = text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '$$$$').replace(/%/g, '%%')
  return /^[\w@%+=:,./-]+$/.test(text) ? escaped : `"${escaped}"`
}

export function serviceUnit (options: ServiceOptions): string {
  const [command] = options.command
  if (command === undefined || !command.startsWith('/')) {
    throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `print-service needs the command as an absolute path, not ${JSON.stringify(command)}`)
  }
  for (const text of [...options.command, options.user, options.description ?? '', options.workingDirectory, ...options.reload]) {
    if (/[\n\r\0]/.test(text)) throw new PrivsepError('ERR_PRIVSEP_INVALID_ARGUMENT', `print-service: ${JSON.stringify(text)} has a line break or NUL`)
  }
  const description = options.description ?? `${options.command.join(' ')} (privsep, drops to ${options.user})`
  return `# Printed by \`privsep print-service\`. The program starts as root, binds and opens what it
# needs, then runs as ${options.user}; after the hand-off root runs only privsep-monitor.
[Unit]
Description=${description}
After=network.target

[Service]
# The monitor sends READY=1 when the program calls ready(), and STOPPING=1 on the way down.
Type=notify
NotifyAccess=main
ExecStart=${options.command.map(word).join(' ')}
# ${options.workingDirectoryChosen === true ? 'As given' : "The program's folder"} (not the folder print-service ran in, which PrivateTmp= may hide).
WorkingDirectory=${word(options.workingDirectory)}
# systemctl reload is an upgrade: \`privsep reload\` sends SIGUSR2 to the monitor, which starts a
# new generation of the program as on disk now (its files opened again) and retires the old
# one once the new one is ready; it returns then, or fails if the upgrade failed. SIGHUP
# (systemctl kill -s HUP --kill-whom=main) renews keys in place: watchSecureContext().
ExecReload=${options.reload.map(word).join(' ')} reload --pid $MAINPID
# SIGTERM to the monitor only, which forwards it once: the child drains. The monitor ends what
# the program leaves behind itself (a subreaper), so systemd need not: KillMode=process, since
# under mixed or control-group a unit whose main process was killed can wait out the whole
# TimeoutStopSec for a cgroup-empty notification before it restarts (systemd 252, cgroup v1).
KillMode=process
TimeoutStopSec=30
# A crash of the monitor (kill -9, the OOM killer) restarts the unit at once; meanwhile the
# listeners wait in systemd's file descriptor store with their backlog: clients wait, none is
# refused. FDSTORE= tells privsep the store's size (systemd 254 sets it itself). systemd 254
# and later also keep the store across stop + start with FileDescriptorStorePreserve=yes (a
# stopped unit's ports then accept into a backlog nobody serves); 252 keeps it across restart
# and Restart=, and has no such setting.
Restart=on-failure
RestartSec=100ms
FileDescriptorStoreMax=${options.fdStoreMax ?? 64}
Environment=FDSTORE=${options.fdStoreMax ?? 64}
${options.runtimeDirectory ? `RuntimeDirectory=${word(options.runtimeDirectory)}\n# Kept across a restart: a unix socket in the store stays reachable by its path.\nRuntimeDirectoryPreserve=restart\n` : ''}UMask=0077

# What the root side needs and no more: bind ports below 1024, drop to the user (groups, gid,
# uid, the bounding set), and signal the child, which runs as another user.
CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_KILL
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service @setuid capset
SystemCallFilter=~@clock @cpu-emulation @debug @module @mount @obsolete @raw-io @reboot @swap
SystemCallErrorNumber=EPERM
# Not MemoryDenyWriteExecute=: V8's JIT writes the code it runs.

[Install]
WantedBy=multi-user.target
`
}
