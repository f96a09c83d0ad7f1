#!/usr/bin/env node
// Builds the native addon (build/Release/rps_platform.node) with node-gyp.
//
// node-gyp downloads nothing: it gets --nodedir, the headers of the Node
// running this script, found next to its binary (see below) and checked
// against process.versions.node. node-gyp is npm's bundled copy, so the
// package needs no dependency for it. When the build cannot happen, this prints why and exits
// 0, so that installing still works and the portable layer is used; with
// REFPERSYS_REQUIRE_NATIVE=1 (CI) it exits 1 instead.
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync, rmSync } from "node:fs"
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

// The addon is built against the headers of the Node that runs this script
// (the one npm scripts run under, which is the project's own Node once it is
// installed), never against headers that merely happen to be configured: an
// npmrc's `nodedir` (npm_config_nodedir) usually names the system Node's
// headers, which are another version. Two layouts put the headers next to
// the binary: a normal prefix (<prefix>/bin/node, <prefix>/include/node) and
// the npm `node` package (node_modules/node/bin/node is a hard link to
// node_modules/node/node_modules/node-<os>-<arch>/bin/node, whose package
// holds include/node). npm_config_nodedir is still used when its headers are
// exactly the running version (e.g. a source build configured by hand).
const running = process.versions.node
const prefix = path.resolve(path.dirname(process.execPath), "..")
const candidates = [
  prefix,
  path.join(prefix, "node_modules", `node-${process.platform}-${process.arch}`),
  ...(process.env.npm_config_nodedir ? [path.resolve(process.env.npm_config_nodedir)] : [])
]

// The version node_version.h declares, or undefined when dir holds no headers.
const headersVersion = (dir) => {
  const include = path.join(dir, "include", "node")
  if (!existsSync(path.join(include, "node_api.h"))) return undefined
  let text
  try {
    text = readFileSync(path.join(include, "node_version.h"), "utf8")
  } catch {
    return "unknown (node_version.h is missing)"
  }
  const part = (name) => text.match(new RegExp(`^#define NODE_${name}_VERSION (\\d+)`, "m"))?.[1]
  const [major, minor, patch] = [part("MAJOR"), part("MINOR"), part("PATCH")]
  return major && minor && patch ? `${major}.${minor}.${patch}` : "unknown (node_version.h names no version)"
}

const findHeaders = () => {
  const found = [...new Set(candidates)].map((dir) => ({ dir, version: headersVersion(dir) }))
    .filter((entry) => entry.version !== undefined)
  return { found, nodedir: found.find((entry) => entry.version === running)?.dir }
}

// The npm `node` package installs node-<os>-<arch> (binary and headers) with
// `npm install --no-save` from its preinstall, so the lockfile does not know
// it and the next `npm install` in the project prunes it as extraneous: the
// binary survives (bin/node is a hard link), the headers do not. Running the
// package's own setup again brings them back (from npm's cache when it can).
const restoreNodePackageHeaders = () => {
  const setup = path.join(prefix, "installArchSpecificPackage.js")
  let name
  try {
    name = JSON.parse(readFileSync(path.join(prefix, "package.json"), "utf8")).name
  } catch {
    return
  }
  if (name !== "node" || !existsSync(setup)) return
  console.log(`@refpersys/platform-linux: the headers of the npm node package in ${prefix} are missing ` +
    "(npm prunes them on a later install); running its setup again to restore them")
  // Its setup spawns npm through a shell, which Node 24 flags (DEP0190); harmless here.
  const result = spawnSync(process.execPath, ["--disable-warning=DEP0190", setup], {
    cwd: prefix,
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 300_000
  })
  if (result.status !== 0) {
    console.warn(`warning: @refpersys/platform-linux: the node package's setup ended with ${result.status ?? result.signal ?? result.error}`)
  }
}

let { found, nodedir } = findHeaders()
if (nodedir === undefined) {
  restoreNodePackageHeaders()
  ;({ found, nodedir } = findHeaders())
}
if (nodedir === undefined) {
  giveUp(
    found.length === 0
      ? `no Node headers found for Node v${running} (${process.execPath}): looked for include/node/node_api.h ` +
          `under ${candidates.join(", ")}; install the headers of this Node (e.g. a nodejs-dev package), ` +
          "or run the install with the project's Node (npm install puts it in node_modules/.bin)"
      : `the Node headers found do not match the Node running the build, v${running} (${process.execPath}): ` +
          found.map((entry) => `${entry.dir}/include/node is v${entry.version}`).join("; ") +
          `; an addon built against them may not load. Install the headers of v${running}, or point ` +
          "npm_config_nodedir at them"
  )
}
console.log(`@refpersys/platform-linux: building the native addon for Node v${running} (${process.execPath}) ` +
  `against the headers in ${nodedir}/include/node`)

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
  stdio: ["ignore", "inherit", "inherit"],
  // A bound, so that a stuck compiler cannot hang npm install.
  timeout: 600_000
})
if (result.error) giveUp(`node-gyp could not run: ${result.error.message}`)
if (result.status !== 0) giveUp(`node-gyp exited with ${result.status ?? result.signal} (see its output above)`)
if (!existsSync(output)) giveUp(`node-gyp succeeded but ${output} is missing`)
