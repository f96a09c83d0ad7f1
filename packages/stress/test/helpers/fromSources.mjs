// Runs a TypeScript entry of this package from its sources, with the
// package's vitest aliases (sibling packages from source), in a plain Node
// process: `node fromSources.mjs <vite config> <entry.ts> [args...]`.
//
// The child processes of the scenarios use it when the scenarios themselves
// run from source (under vitest), so the tests need no build. Vite's module
// runner loads the entry and everything it imports statically; the dev
// server is closed as soon as that is done, so the child holds no handle of
// its own and exits by itself when its work is done.
import { createServer, createServerModuleRunner } from "vite"

const [configFile, entry, ...args] = process.argv.slice(2)
if (configFile === undefined || entry === undefined) {
  process.stderr.write("usage: fromSources.mjs <vite config> <entry.ts> [args...]\n")
  process.exit(2)
}
// The entry reads its own options from process.argv, as when run directly.
process.argv = [process.argv[0], entry, ...args]

const server = await createServer({
  configFile,
  logLevel: "error",
  appType: "custom",
  server: { middlewareMode: true, hmr: false, ws: false, watch: null },
  optimizeDeps: { noDiscovery: true, include: [] }
})
const runner = createServerModuleRunner(server.environments.ssr, { hmr: false })
try {
  await runner.import(entry)
} finally {
  await server.close()
}
