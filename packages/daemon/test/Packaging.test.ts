// The published packages as an app meets them: each one packed with `npm
// pack`, installed from the tarballs into a fresh ESM app outside the
// workspace together with effect, and used from there. `effect` and the
// @effect/* packages are peer dependencies, so the app holds one copy of
// each and a mismatched major is refused at install (ERESOLVE) instead of
// crashing at run time with two Effect runtimes. npm runs on the Node running
// the tests (the project's Node under `npm test`), so platform-linux's
// `install` script builds the native addon inside the app, as it would for a
// user on that Node. `npm test` builds first, so dist/ is there to pack.
import { it } from "@effect/vitest"
import { afterAll, beforeAll, describe, expect } from "vitest"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { packageDir, removeTempDirs, requireBuilt, tempDir } from "./helpers/child.js"

const packagesDir = path.resolve(packageDir, "..")
const published = ["core", "testkit", "platform-linux", "threads", "daemon"]

// The effect the workspace develops and tests against; the app asks for it.
const effectVersion = (JSON.parse(fs.readFileSync(
  createRequire(path.join(packagesDir, "core", "package.json")).resolve("effect/package.json"),
  "utf8"
)) as { version: string }).version
const effectMajor = Number(effectVersion.split(".")[0])

// A user's shell: npm first finds the Node running these tests, and nothing
// of the npm run around them (npm_* variables would configure the child npm).
const userEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|INIT_CWD$|VITEST|NODE_ENV$)/i.test(key)) continue
    env[key] = value
  }
  env.PATH = [path.dirname(process.execPath), process.env.PATH ?? ""].join(path.delimiter)
  return env
}

interface Ran {
  readonly command: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

const describeRun = (ran: Ran) =>
  `${ran.command} (in ${ran.ms} ms): exit ${ran.code ?? ran.signal}\nstdout:\n${ran.stdout}\nstderr:\n${ran.stderr}`

// Runs a command to its end, or kills its whole process group (npm, node-gyp,
// the compiler) after timeoutMs: nothing here may outlive its test.
const exec = (file: string, args: ReadonlyArray<string>, cwd: string, timeoutMs: number): Promise<Ran> =>
  new Promise((resolve, reject) => {
    const command = [file, ...args].join(" ")
    const started = Date.now()
    const child = spawn(file, args, { cwd, env: userEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      stderr += `\n[killed: still running after ${timeoutMs} ms]`
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {
        child.kill("SIGKILL")
      }
    }, timeoutMs)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(new Error(`${command} could not start: ${error.message}`))
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ command, code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })

const npm = (args: ReadonlyArray<string>, cwd: string, timeoutMs: number) =>
  exec("npm", [...args, "--prefer-offline", "--no-audit", "--no-fund"], cwd, timeoutMs)

const newApp = (name: string): string => {
  const dir = path.join(tempDir("rps-packaging-"), name)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name, private: true, type: "module" }, null, 2))
  return dir
}

// Every installed copy of a package in an app: directories named `name`
// under any node_modules, however deep, whose package.json names it.
const copiesOf = (app: string, name: string): Array<string> => {
  const found: Array<string> = []
  const walk = (modules: string) => {
    if (!fs.existsSync(modules)) return
    for (const entry of fs.readdirSync(modules, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name === ".bin") continue
      const dirs = entry.name.startsWith("@")
        ? fs.readdirSync(path.join(modules, entry.name)).map((sub) => path.join(modules, entry.name, sub))
        : [path.join(modules, entry.name)]
      for (const dir of dirs) {
        try {
          if ((JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string }).name === name) {
            found.push(path.relative(app, dir))
          }
        } catch {
          // not a package
        }
        walk(path.join(dir, "node_modules"))
      }
    }
  }
  walk(path.join(app, "node_modules"))
  return found.sort()
}

// The app's program: an answer through Agenda.run, and one event loop round
// trip on the test platform and on the portable Node platform (command P
// runs a tasklet on the agenda, which sends Q to stop the loop).
const program = `
import { Agenda, EventLoop } from "@refpersys/core"
import { TestPlatform } from "@refpersys/testkit"
import { AutoPlatform, LinuxPlatform, NodePlatform } from "@refpersys/platform-linux"
import { ThreadAgenda } from "@refpersys/threads"
import { Framing } from "@refpersys/daemon"
import { Deferred, Effect, Layer } from "effect"

const roundTrip = (name, platform) => Effect.scoped(Effect.gen(function*() {
  const loop = yield* EventLoop.make({})
  const handled = yield* Deferred.make()
  yield* loop.register({
    explanation: "P: answer on the agenda, then quit",
    match: { _tag: "Command", byte: "P" },
    handle: () => Effect.andThen(Deferred.succeed(handled, "pong"), Effect.orDie(loop.send("Q"))),
    run: "Normal"
  })
  yield* loop.send("P")
  const stopped = yield* loop.awaitStop
  return name + ": " + (yield* Deferred.await(handled)) + ", " + stopped.reason + " (" + stopped.cause + ")"
}).pipe(Effect.provide(Layer.merge(platform, Agenda.layer()))))

const program = Effect.gen(function*() {
  const answer = yield* Agenda.run(Effect.succeed(21 * 2), { priority: "High", label: "answer" }).pipe(
    Effect.provide(Agenda.layer({ workers: 2 }))
  )
  console.log("agenda: " + answer)
  console.log(yield* roundTrip("test-platform", TestPlatform.layer()))
  console.log(yield* roundTrip("node-platform", NodePlatform.layer()))
  console.log("auto-platform: " + AutoPlatform.choice.name + (LinuxPlatform.loadError ? " (" + LinuxPlatform.loadError + ")" : ""))
  console.log("modules: threads " + typeof ThreadAgenda.layer + ", daemon " + typeof Framing)
})

// Platform handles never keep Node alive; this does until the program ends.
const keepAlive = setInterval(() => {}, 1 << 30)
Effect.runPromise(program).then(() => clearInterval(keepAlive), (error) => {
  console.error(error)
  process.exit(1)
})
`

let tarballs: Array<string> = []

beforeAll(async () => {
  requireBuilt(...published.map((name) => path.join(packagesDir, name, "dist", "index.js")))
  const destination = tempDir("rps-tarballs-")
  for (const name of published) {
    const packed = await npm(["pack", "--json", "--pack-destination", destination], path.join(packagesDir, name), 60_000)
    expect(packed.code, describeRun(packed)).toBe(0)
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("["))) as Array<
      { filename: string; size: number; unpackedSize: number; entryCount: number }
    >
    console.log(`packed ${info!.filename}: ${info!.size} bytes (${info!.unpackedSize} unpacked, ${info!.entryCount} files)`)
    tarballs.push(path.join(destination, info!.filename))
  }
}, 150_000)

afterAll(() => {
  tarballs = []
  removeTempDirs()
})

describe("the published packages, installed from their tarballs into a fresh app", () => {
  it("hold one effect, build the native addon in the app and run an agenda and event loops", async () => {
    const app = newApp("consumer")
    const install = await npm(
      ["install", "--foreground-scripts", ...tarballs, `effect@${effectVersion}`],
      app,
      180_000
    )
    expect(install.code, describeRun(install)).toBe(0)
    console.log(`installed the ${tarballs.length} tarballs and effect@${effectVersion} in ${install.ms} ms`)

    // The addon was built inside the app's tree, for the Node that ran npm.
    expect(install.stdout, describeRun(install)).toContain(
      `@refpersys/platform-linux: building the native addon for Node v${process.versions.node}`
    )
    expect(
      fs.existsSync(path.join(app, "node_modules", "@refpersys", "platform-linux", "build", "Release", "rps_platform.node")),
      describeRun(install)
    ).toBe(true)

    // One copy of effect on disk, and npm agrees (exit 0: no missing or invalid peer).
    expect(copiesOf(app, "effect")).toEqual([path.join("node_modules", "effect")])
    const ls = await npm(["ls", "effect", "--all"], app, 60_000)
    console.log(`npm ls effect --all:\n${ls.stdout}`)
    expect(ls.code, describeRun(ls)).toBe(0)
    const listed = ls.stdout.split("\n").filter((line) => /\beffect@/.test(line))
    expect(listed.filter((line) => !line.includes("deduped")), ls.stdout).toEqual([
      expect.stringMatching(new RegExp(`effect@${effectVersion.replaceAll(".", "\\.")}$`))
    ])
    // The testkit's vitest peers are optional: an app that does not test with them does not get them.
    expect(copiesOf(app, "vitest")).toEqual([])
    expect(copiesOf(app, "@effect/vitest")).toEqual([])

    fs.writeFileSync(path.join(app, "main.mjs"), program)
    const ran = await exec(process.execPath, ["main.mjs"], app, 60_000)
    expect(ran.code, describeRun(ran)).toBe(0)
    expect(ran.stdout).toBe(
      [
        "agenda: 42",
        "test-platform: pong, quit (command Q)",
        "node-platform: pong, quit (command Q)",
        "auto-platform: linux-native",
        "modules: threads function, daemon object",
        ""
      ].join("\n")
    )
  }, 240_000)

  it("refuse another major of effect at install with npm's peer conflict", async () => {
    const other = `effect@${effectMajor - 1}`
    // The core alone (`npm install @refpersys/core effect@<other major>`), then all of them.
    const core = tarballs.find((file) => path.basename(file).startsWith("refpersys-core-"))!
    for (const [name, files] of [["core-alone", [core]], ["all", tarballs]] as const) {
      const app = newApp(`mismatched-${name}`)
      const install = await npm(["install", ...files, other], app, 60_000)
      expect(install.code, describeRun(install)).not.toBe(0)
      expect(install.stderr, describeRun(install)).toContain("code ERESOLVE")
      expect(install.stderr, describeRun(install)).toMatch(new RegExp(`Found: effect@${effectMajor - 1}\\.`))
      // The conflict is with one of our packages' own effect peer, not one that comes with a helper.
      expect(install.stderr, describeRun(install)).toMatch(/Could not resolve dependency:\n(?:npm (?:error|ERR!) )?peer effect@"[^"]+" from @refpersys\/[a-z-]+@/)
      // Refused before anything was installed.
      expect(fs.existsSync(path.join(app, "node_modules")), describeRun(install)).toBe(false)
    }
  }, 150_000)
})
