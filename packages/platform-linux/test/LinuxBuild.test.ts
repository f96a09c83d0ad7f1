import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

// The build script on a copy of the package whose compiler always fails: the
// install must still succeed with a clear warning, unless native is required.
const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

const buildWithBrokenCompiler = (env: Record<string, string>) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rps-build-"))
  try {
    for (const entry of ["binding.gyp", "native", "scripts", "package.json"]) {
      fs.cpSync(path.join(packageDir, entry), path.join(dir, entry), { recursive: true })
    }
    const result = spawnSync(process.execPath, [path.join(dir, "scripts", "build-native.mjs")], {
      cwd: dir,
      env: { ...process.env, CC: "/bin/false", ...env },
      encoding: "utf8",
      // Bounded below the test timeout: a stuck build fails the test instead of hanging it.
      timeout: 100_000
    })
    return { status: result.status, stderr: result.stderr, built: fs.existsSync(path.join(dir, "build", "Release", "rps_platform.node")) }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe("scripts/build-native.mjs", () => {
  it("warns and exits 0 when the build fails", () => {
    const { status, stderr, built } = buildWithBrokenCompiler({ REFPERSYS_REQUIRE_NATIVE: "" })
    expect(status).toBe(0)
    expect(built).toBe(false)
    // Whatever stopped it (no compiler here; elsewhere maybe no headers or not Linux) is named.
    expect(stderr).toMatch(/the native addon was not built: \S/)
    expect(stderr).toContain("REFPERSYS_REQUIRE_NATIVE=1")
  }, 120_000)

  it("exits 1 when the build fails and REFPERSYS_REQUIRE_NATIVE=1", () => {
    const { status, stderr } = buildWithBrokenCompiler({ REFPERSYS_REQUIRE_NATIVE: "1" })
    expect(status).toBe(1)
    expect(stderr).toContain("REFPERSYS_REQUIRE_NATIVE=1 is set, so this is an error")
  }, 120_000)
})

// The headers the addon is built against must be those of the Node that runs
// the build. These runs use a real compiler on a copy of the package, with
// fake header dirs standing where a misconfigured or foreign Node's would.
const running = process.versions.node
const realPrefix = path.resolve(path.dirname(process.execPath), "..")

const versionOf = (dir: string) => {
  const text = fs.readFileSync(path.join(dir, "include", "node", "node_version.h"), "utf8")
  const part = (name: string) => text.match(new RegExp(`^#define NODE_${name}_VERSION (\\d+)`, "m"))?.[1]
  return `${part("MAJOR")}.${part("MINOR")}.${part("PATCH")}`
}

// The headers of the running Node: a normal prefix, or the npm `node` package's node-<os>-<arch>.
const realHeaders = () => {
  const dir = [realPrefix, path.join(realPrefix, "node_modules", `node-${process.platform}-${process.arch}`)]
    .find((candidate) => fs.existsSync(path.join(candidate, "include", "node", "node_version.h")))
  if (dir === undefined) throw new Error(`no headers next to ${process.execPath}; run npm install first`)
  return path.join(dir, "include", "node")
}

// A header dir that declares another version (and could not build anything).
const fakeHeaders = (dir: string, version: string) => {
  const include = path.join(dir, "include", "node")
  fs.mkdirSync(include, { recursive: true })
  const [major, minor, patch] = version.split(".")
  fs.writeFileSync(path.join(include, "node_api.h"), "#error these are not the running Node's headers\n")
  fs.writeFileSync(
    path.join(include, "node_version.h"),
    `#define NODE_MAJOR_VERSION ${major}\n#define NODE_MINOR_VERSION ${minor}\n#define NODE_PATCH_VERSION ${patch}\n`
  )
}

// The running Node binary under another prefix: a hard link keeps process.execPath there.
const linkNode = (prefix: string) => {
  const bin = path.join(prefix, "bin", "node")
  fs.mkdirSync(path.dirname(bin), { recursive: true })
  try {
    fs.linkSync(process.execPath, bin)
  } catch {
    fs.copyFileSync(process.execPath, bin)
    fs.chmodSync(bin, 0o755)
  }
  return bin
}

interface Build {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
  readonly built: boolean
  readonly nodedir: string | undefined
  readonly nodedirVersion: string | undefined
}

const build = (setup: (dir: string) => { node: string; env: Record<string, string> }): Build => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rps-headers-"))
  try {
    const copy = path.join(dir, "package")
    for (const entry of ["binding.gyp", "native", "scripts", "package.json"]) {
      fs.cpSync(path.join(packageDir, entry), path.join(copy, entry), { recursive: true })
    }
    const { env, node } = setup(dir)
    const result = spawnSync(node, [path.join(copy, "scripts", "build-native.mjs")], {
      cwd: copy,
      env: { ...process.env, REFPERSYS_REQUIRE_NATIVE: "", npm_config_nodedir: "", ...env },
      encoding: "utf8",
      // Bounded below the test timeout: a stuck build fails the test instead of hanging it.
      timeout: 100_000
    })
    const nodedir = configuredNodedir(copy)
    return {
      status: result.status,
      stdout: result.stdout,
      stderr: result.stderr,
      built: fs.existsSync(path.join(copy, "build", "Release", "rps_platform.node")),
      nodedir,
      nodedirVersion: nodedir === undefined ? undefined : versionOf(nodedir)
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// The headers node-gyp configured the build with (it records them in build/config.gypi).
const configuredNodedir = (dir: string) => {
  const file = path.join(dir, "build", "config.gypi")
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8").match(/"nodedir": "([^"]*)"/)?.[1] : undefined
}

describe("scripts/build-native.mjs: headers", () => {
  it("builds against the running Node's headers when npm_config_nodedir names another version's", () => {
    const result = build((dir) => {
      fakeHeaders(path.join(dir, "system"), "20.0.0")
      return { node: process.execPath, env: { npm_config_nodedir: path.join(dir, "system") } }
    })
    expect(result.stderr).not.toContain("not built")
    expect(result.status).toBe(0)
    expect(result.built).toBe(true)
    expect(result.nodedir && path.join(result.nodedir, "include", "node")).toBe(realHeaders())
    expect(result.nodedirVersion).toBe(running)
  }, 120_000)

  it("refuses headers of another version next to the running Node: an error with REFPERSYS_REQUIRE_NATIVE=1", () => {
    const mismatched = (required: string) =>
      build((dir) => {
        fakeHeaders(path.join(dir, "prefix"), "20.0.0")
        return { node: linkNode(path.join(dir, "prefix")), env: { REFPERSYS_REQUIRE_NATIVE: required } }
      })
    const strict = mismatched("1")
    expect(strict.status).toBe(1)
    expect(strict.built).toBe(false)
    expect(strict.stderr).toMatch(
      new RegExp(`headers found do not match the Node running the build, v${running}.*include/node is v20\\.0\\.0`)
    )
    expect(strict.stderr).toContain("REFPERSYS_REQUIRE_NATIVE=1 is set, so this is an error")
    const lenient = mismatched("")
    expect(lenient.status).toBe(0)
    expect(lenient.built).toBe(false)
    expect(lenient.stderr).toContain("headers found do not match the Node running the build")
    expect(lenient.stderr).toContain("the portable layer is used instead")
  }, 120_000)

  it("restores the npm node package's headers when a later npm install pruned them", () => {
    const result = build((dir) => {
      // The npm `node` package's layout after a second `npm install`: bin/node and the setup
      // script survive, node_modules/node-<os>-<arch> (with the headers) is gone. This
      // setup stands in for its `npm install --no-save node-<os>-<arch>@<version>`.
      const prefix = path.join(dir, "node")
      fs.mkdirSync(prefix, { recursive: true })
      fs.writeFileSync(path.join(prefix, "package.json"), JSON.stringify({ name: "node", version: running }))
      const target = path.join(prefix, "node_modules", `node-${process.platform}-${process.arch}`, "include", "node")
      fs.writeFileSync(
        path.join(prefix, "installArchSpecificPackage.js"),
        `require("node:fs").cpSync(${JSON.stringify(realHeaders())}, ${JSON.stringify(target)}, { recursive: true })\n`
      )
      return { node: linkNode(prefix), env: {} }
    })
    expect(result.stdout).toContain("running its setup again to restore them")
    expect(result.status).toBe(0)
    expect(result.built).toBe(true)
    expect(result.nodedirVersion).toBe(running)
  }, 120_000)
})

describe("the installed addon", () => {
  // npm runs the workspaces' install scripts after the project's `node` package is in
  // node_modules/.bin, so the addon is built by, and for, the Node that runs the tests.
  it("was built against the headers of the Node running the tests", () => {
    const addon = path.join(packageDir, "build", "Release", "rps_platform.node")
    const nodedir = configuredNodedir(packageDir)
    if (!fs.existsSync(addon)) {
      // Not built (no compiler, say): then nothing claims a configuration either way.
      expect(process.env.REFPERSYS_REQUIRE_NATIVE).not.toBe("1")
      return
    }
    expect(nodedir, "build/config.gypi names no nodedir").toBeDefined()
    expect(
      versionOf(nodedir!),
      `the addon was built against ${nodedir}, but the tests run on Node v${running} (${process.execPath}); ` +
        "run npm install again with the project's Node (npm install; npm test)"
    ).toBe(running)
  })
})
