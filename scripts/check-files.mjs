// The `prepack` script of every npm/ platform package: refuses to pack or publish the package
// when a file its `files` field lists is missing. npm itself packs what it finds and says
// nothing, so a package without its binary would install and then fail to load. Runs in the
// package's folder, as npm runs prepack; `files` entries are file names (no globs).
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.cwd()
const { name, files = [] } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
const missing = files.filter((file) => !existsSync(join(dir, file)))
if (missing.length > 0) {
  console.error(`${name}: not packing: ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} listed in "files" but missing from ${dir}. ` +
    'Copy the built file there first (the publish job does that with `napi artifacts --npm-dir npm`).')
  process.exit(1)
}
