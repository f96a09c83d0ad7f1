import * as path from "node:path"
import { defineProject, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

// The thread-codec-faults scenario imports @refpersys/threads, whose sources
// import subpaths (`@refpersys/core/AgendaError`) so that worker threads load
// only what they need from dist. In tests they resolve to source like the
// package roots do; these come first because the shared package-root aliases
// would otherwise match them as prefixes (as in packages/threads).
const subpaths = [{
  find: /^@refpersys\/(core|threads)\/([A-Za-z]+)$/,
  replacement: path.join(__dirname, "..", "$1", "src", "$2.ts")
}]
const roots = Object.entries(shared.resolve?.alias ?? {}).map(([find, replacement]) => ({ find, replacement }))

const config = mergeConfig(shared, defineProject({ test: { name: "stress" } }))

export default { ...config, resolve: { ...config.resolve, alias: [...subpaths, ...roots] } }
