// nobody's uid and gid from /etc/passwd, as a hand-written program would look them up
// (Node has no getpwnam). Read synchronously: a few hundred bytes.
import fs from 'node:fs'

export function nobody () {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'))
  if (!line) throw new Error('no user nobody in /etc/passwd')
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}
