// NOT COMMITTED: what breaks without each rule (docs/SECURITY.md). Child reports probes.
import { forkExecUnprivileged, restorePassedFiles, privsep } from 'privsep'
import dns from 'node:dns/promises'
import os from 'node:os'
if (process.getuid() !== 0) {
  restorePassedFiles()
  const out = { state: privsep.sandbox.state }
  try { out.dns = (await dns.lookup('localhost', { family: 4 })).address } catch (e) { out.dns = e.code }
  try { out.user = os.userInfo().username } catch (e) { out.user = e.code ?? e.message }
  try {
    const { Registry, collectDefaultMetrics } = await import('prom-client')
    const r = new Registry(); collectDefaultMetrics({ register: r })
    const t = await r.metrics()
    out.fds = t.match(/^process_open_fds (\S+)$/m)?.[1] ?? 'missing'
  } catch (e) { out.fds = e.code ?? e.message }
  out.date = new Date(Date.UTC(2026, 0, 1, 12)).toString()
  console.log(JSON.stringify(out))
  process.exit(0)
}
await forkExecUnprivileged({ user: 'nobody', cwd: '/' })
