#!/usr/bin/env node
// Builds the native addon (build/Release/rps_platform.node) with node-gyp.
//
// Nothing is downloaded: node-gyp gets --nodedir, from npm_config_nodedir or
// from the prefix of the running node (<prefix>/include/node holds the
// headers). node-gyp is npm's bundled copy, so the package needs no
// dependency for it. When the build cannot happen, this prints why and exits
// 0, so that installing still works and the portable layer is used; with
// REFPERSYS_REQUIRE_NATIVE=1 (CI) it exits 1 instead.
import { spawnSync } from "node:child_process"
import { existsSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const required = process.env.REFPERSYS_REQUIRE_NATIVE === "1"

const output = path.join(packageDir, "build", "Release", "rps_platform.node")

const giveUp = (reason) => {
  // An addon left from an earlier build would no longer match the sources.
  rmSync(output, { force: true })
  const lines = [
    `@refpersys/platform-linux: the native addon was not built: ${reason}`,
    required
      ? "REFPERSYS_REQUIRE_NATIVE=1 is set, so this is an error."
      : "LinuxPlatform.loadError will say so, and the portable layer is used instead. " +
        "Set REFPERSYS_REQUIRE_NATIVE=1 to make this an error."
  ]
  console.warn(lines.map((line) => `warning: ${line}`).join("\n"))
  process.exit(required ? 1 : 0)
}

if (process.platform !== "linux") giveUp(`the addon is Linux-only and this is ${process.platform}`)

const headersIn = (dir) => existsSync(path.join(dir, "include", "node", "node_api.h"))
const nodedir = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), "..")]
  .find((dir) => dir !== undefined && dir !== "" && headersIn(dir))
if (nodedir === undefined) {
  giveUp(
    `no Node headers found (looked for include/node/node_api.h under npm_config_nodedir=` +
      `${process.env.npm_config_nodedir ?? "(unset)"} and under ${path.resolve(path.dirname(process.execPath), "..")}); ` +
      "install the headers (e.g. a nodejs-dev package) or set npm_config_nodedir"
  )
}

const findNodeGyp = () => {
  const candidates = []
  if (process.env.npm_execpath) candidates.push(path.dirname(process.env.npm_execpath))
  candidates.push(path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm", "bin"))
  candidates.push(packageDir)
  for (const from of candidates) {
    try {
      return createRequire(path.join(from, "noop.js")).resolve("node-gyp/bin/node-gyp.js")
    } catch {
      // the next place may have it
    }
  }
  return undefined
}
const nodeGyp = findNodeGyp()
if (nodeGyp === undefined) giveUp("node-gyp was not found (neither npm's bundled copy nor a local one)")

// configure + build rather than rebuild: rebuild starts by deleting build/,
// where tsc keeps its build info too.
const result = spawnSync(process.execPath, [nodeGyp, "configure", "build", `--nodedir=${nodedir}`, "--loglevel=warn"], {
  cwd: packageDir,
  // node-gyp also reads npm_config_nodedir, which would win over --nodedir.
  env: { ...process.env, npm_config_nodedir: nodedir },
  stdio: ["ignore", "inherit", "inherit"]
})
if (result.error) giveUp(`node-gyp could not run: ${result.error.message}`)
if (result.status !== 0) giveUp(`node-gyp exited with ${result.status ?? result.signal} (see its output above)`)
if (!existsSync(output)) giveUp(`node-gyp succeeded but ${output} is missing`)
