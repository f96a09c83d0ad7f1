// End to end: the built daemon and control client as child processes, on
// real FIFOs and real signals.
import { it } from "@effect/vitest"
import { afterAll, afterEach, beforeAll, describe, expect } from "vitest"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import * as Client from "../src/Client.js"
import * as Output from "../src/Output.js"
import * as RuntimeDir from "../src/RuntimeDir.js"
import { ctlBin, daemonBin, killAll, removeTempDirs, requireBuilt, run, start, tempDir, writeCmd } from "./helpers/child.js"

beforeAll(() => requireBuilt(daemonBin, ctlBin))
afterEach(killAll)
afterAll(removeTempDirs)

const decodeLine = Schema.decodeUnknownSync(Output.Line)

/** Picks a JSON line of one kind, checked against its Schema. */
const event = <K extends Output.Line["event"]>(
  kind: K,
  where: (line: Extract<Output.Line, { event: K }>) => boolean = () => true
) =>
(value: unknown): Extract<Output.Line, { event: K }> | undefined => {
  if (typeof value !== "object" || value === null || (value as { event?: unknown }).event !== kind) return undefined
  const line = decodeLine(value) as Extract<Output.Line, { event: K }>
  return where(line) ? line : undefined
}

const call = (dir: string, method: string, params?: Record<string, unknown>) =>
  Effect.runPromise(Client.call(dir, method, { timeout: "15 seconds", ...(params === undefined ? {} : { params }) }))

const rawExchange = (dir: string, lines: ReadonlyArray<string>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const connection = yield* Client.connect(dir)
    const replies: Array<any> = []
    for (const line of lines) {
      yield* connection.send(`${line}\n`)
      replies.push(yield* connection.next(() => true, "15 seconds"))
    }
    return replies
  })))

const addsUp = (stats: Output.FinalStats) => {
  expect(stats.queued + stats.running).toBe(0)
  expect(stats.submitted).toBe(stats.completed + stats.failed + stats.interrupted + stats.dropped + stats.obsolete)
  expect(stats.balanced).toBe(true)
}

const deadPid = () => spawnSync(process.execPath, ["-e", "0"]).pid!

describe("rps-daemon end to end", () => {
  it("serves signals, command bytes, JSON-RPC and the control client, then quits on SIGINT with its accounts", async () => {
    const dir = tempDir()
    // Leftovers of a crashed run: its FIFOs and the pid file of a dead process.
    spawnSync("mkfifo", [path.join(dir, "rps.cmd"), path.join(dir, "rps.out")])
    const crashed = deadPid()
    fs.writeFileSync(path.join(dir, "rps.pid"), `${crashed}\n`)

    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--rate", "500", "--status-interval", "200"])
    const stale = await daemon.waitFor("the stale line", event("stale"))
    expect(stale.pid).toBe(crashed)
    expect(stale.removed).toContain(path.join(dir, "rps.pid"))
    const ready = await daemon.waitFor("the ready line", event("ready"))
    expect(ready.pid).toBe(daemon.pid)
    expect(["linux-native", "node-portable"]).toContain(ready.platform)
    expect([ready.cmd, ready.out]).toEqual([path.join(dir, "rps.cmd"), path.join(dir, "rps.out")])
    expect(ready.workers).toBe(4)
    expect(fs.readFileSync(path.join(dir, "rps.pid"), "utf8").trim()).toBe(String(daemon.pid))
    await daemon.waitFor("a status line with work done", event("status", (s) => s.ended > 0))

    daemon.kill("SIGUSR2") // a status line at once; counted below
    daemon.kill("SIGUSR1")
    const byUsr1 = await daemon.waitFor("the SIGUSR1 dump", event("dump", (d) => d.cause === "SIGUSR1"))
    expect(byUsr1.signals.SIGUSR1).toBeGreaterThanOrEqual(1)
    expect(byUsr1.workers).toHaveLength(4)
    expect(byUsr1.handlers.map((h) => h.explanation)).toEqual(
      expect.arrayContaining(["default: D dumps the runtime state", "daemon: SIGHUP reopens the control FIFOs, recreating removed ones"])
    )
    expect(byUsr1.agenda.total.submitted).toBeGreaterThan(0)

    writeCmd(dir, "D")
    const byD = await daemon.waitFor("the D dump", event("dump", (d) => d.cause === "command D"))
    expect(byD.unknownCommands).toBe(0)

    writeCmd(dir, "Z")
    writeCmd(dir, "D\n")
    const afterZ = await daemon.waitFor(
      "a D dump counting the unknown byte",
      event("dump", (d) => d.cause === "command D" && d.unknownCommands === 1)
    )
    expect(afterZ.control.commandBytes).toBe(3)

    const stats = Schema.decodeUnknownSync(Output.StatsResult)(await call(dir, "stats"))
    expect(stats.pid).toBe(daemon.pid)
    expect(stats.unknownCommands).toBe(1)
    expect(stats.status.state).toBe("running")

    const [malformed, unknown, badParams, notRequest] = await rawExchange(dir, [
      '{"jsonrpc":"2.0","method":"stats","id":1',
      '{"jsonrpc":"2.0","method":"reboot","id":2}',
      '{"jsonrpc":"2.0","method":"submit","params":{"priority":"Urgent"},"id":3}',
      '{"jsonrpc":"2.0","id":4}'
    ])
    expect(malformed).toMatchObject({ jsonrpc: "2.0", error: { code: -32700 }, id: null })
    expect(unknown).toMatchObject({ error: { code: -32601 }, id: 2 })
    expect(unknown.error.data.available).toEqual(["dump", "exit", "gc", "quit", "stats", "submit"])
    expect(badParams).toMatchObject({ error: { code: -32602 }, id: 3 })
    expect(notRequest).toMatchObject({ error: { code: -32600 }, id: 4 })

    const ctlStats = await run(ctlBin, ["stats", "--runtime-dir", dir, "--json"])
    expect(ctlStats.stderr).toBe("")
    expect(ctlStats.code).toBe(0)
    expect(Schema.decodeUnknownSync(Output.StatsResult)(JSON.parse(ctlStats.stdout)).pid).toBe(daemon.pid)
    const gc = Schema.decodeUnknownSync(Output.GcResult)(await call(dir, "gc"))
    expect(gc.gcCycles).toBe(1)

    // SIGHUP reopens the FIFOs, recreating the one removed under the daemon.
    fs.rmSync(path.join(dir, "rps.cmd"))
    daemon.kill("SIGHUP")
    const reopened = await daemon.waitFor("the reopened line", event("reopened"))
    expect(reopened.recreated).toEqual([path.join(dir, "rps.cmd")])
    expect((await call(dir, "stats") as { pid: number }).pid).toBe(daemon.pid)

    daemon.kill("SIGINT")
    const stopping = await daemon.waitFor("the stopping line", event("stopping"))
    expect(stopping).toEqual({ event: "stopping", reason: "quit", cause: "SIGINT" })
    const stopped = await daemon.waitFor("the stopped line", event("stopped"))
    expect(await daemon.exited).toEqual({ code: 0, signal: null })
    expect(stopped).toMatchObject({ reason: "quit", cause: "SIGINT", exitCode: 0 })
    addsUp(stopped.stats)
    expect(stopped.stats.completed).toBeGreaterThan(0)
    expect(stopped.stats.unknownCommands).toBe(1)
    expect(stopped.stats.signals).toMatchObject({ SIGUSR1: 1, SIGUSR2: 1, SIGHUP: 1, SIGINT: 1 })
    expect(stopped.stats.control.reopens).toBe(1)
    expect(fs.readdirSync(dir)).toEqual([])
  }, 90_000)

  it("a second SIGINT while draining exits at once with code 130", async () => {
    const dir = tempDir()
    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--rate", "200"])
    await daemon.waitFor("the ready line", event("ready"))
    // A tasklet that sleeps for a minute keeps the drain going.
    const submitted = await call(dir, "submit", { priority: "Low", sleepMs: 60_000, label: "sleeper" }) as { ids: Array<number> }
    expect(submitted.ids).toHaveLength(1)
    daemon.kill("SIGINT")
    await daemon.waitFor("the quit", event("stopping", (s) => s.reason === "quit" && s.cause === "SIGINT"))
    daemon.kill("SIGINT")
    await daemon.waitFor("the exit", event("stopping", (s) => s.reason === "exit" && s.cause === "second SIGINT"))
    const stopped = await daemon.waitFor("the stopped line", event("stopped"))
    expect(await daemon.exited).toEqual({ code: 130, signal: null })
    expect(stopped).toMatchObject({ reason: "exit", cause: "second SIGINT", exitCode: 130 })
    addsUp(stopped.stats)
    expect(stopped.stats.interrupted + stopped.stats.dropped).toBeGreaterThanOrEqual(1)
  }, 60_000)

  it("runs on the portable platform, and the control client's quit stops it cleanly", async () => {
    const dir = tempDir()
    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--platform", "portable", "--rate", "300"])
    const ready = await daemon.waitFor("the ready line", event("ready"))
    expect(ready.platform).toBe("node-portable")
    writeCmd(dir, "D\n")
    const dump = await daemon.waitFor("the D dump", event("dump", (d) => d.cause === "command D"))
    expect(dump.platform.name).toBe("node-portable")
    const quit = await run(ctlBin, ["quit", "--runtime-dir", dir])
    expect(quit.code).toBe(0)
    expect(quit.stdout).toBe(`daemon pid ${daemon.pid} is quitting (draining its agenda)\n`)
    const stopped = await daemon.waitFor("the stopped line", event("stopped"))
    expect(await daemon.exited).toEqual({ code: 0, signal: null })
    expect(stopped).toMatchObject({ reason: "quit", cause: "command Q", exitCode: 0 })
    addsUp(stopped.stats)
  }, 60_000)

  it("short runs: --duration and --mix; bad flags (2); a live daemon's directory (1); no daemon for the client (1)", async () => {
    const live = tempDir()
    fs.writeFileSync(path.join(live, "rps.pid"), `${process.pid}\n`)
    // Independent processes, started together: most of their time is Node loading modules.
    const [timed, help, badInteger, badMix, refused, noDaemon] = await Promise.all([
      run(daemonBin, ["--json", "--runtime-dir", tempDir(), "--duration", "0.5", "--rate", "400", "--mix", "0:0:1"]),
      run(daemonBin, ["--help"]),
      run(daemonBin, ["--workers", "abc"]),
      run(daemonBin, ["--mix", "1:2", "--runtime-dir", tempDir()]),
      run(daemonBin, ["--json", "--runtime-dir", live]),
      run(ctlBin, ["stats", "--runtime-dir", tempDir()])
    ])
    expect(timed.code, timed.stderr).toBe(0)
    const stopped = timed.stdout.trim().split("\n").map((l) => event("stopped")(JSON.parse(l))).find((l) => l !== undefined)
    expect(stopped).toMatchObject({ reason: "quit", cause: "duration", exitCode: 0 })
    addsUp(stopped!.stats)
    expect(stopped!.stats.byPriority.Low.submitted).toBeGreaterThan(0)
    expect(stopped!.stats.byPriority.High.submitted + stopped!.stats.byPriority.Normal.submitted).toBe(0)

    expect(help.code).toBe(0)
    for (const flag of ["--workers", "--rate", "--mix", "--duration", "--runtime-dir", "--json", "--platform"]) {
      expect(help.stdout).toContain(flag)
    }
    for (const bad of [badInteger, badMix]) {
      expect(bad.code).toBe(2)
      expect(bad.stdout).toBe("")
      expect(bad.stderr).toContain("rps-daemon: bad command line; rps-daemon --help lists the commands and flags")
    }
    expect(badInteger.stderr).toContain('Invalid value for flag --workers: "abc"')
    expect(badMix.stderr).toContain("--mix takes three non-negative weights")

    expect(refused.code).toBe(1)
    expect(refused.stdout).toBe("")
    expect(refused.stderr).toContain(`a daemon (pid ${process.pid}) is already running`)
    expect(RuntimeDir.readPid(RuntimeDir.files(live))).toBe(process.pid)

    expect(noDaemon.code).toBe(1)
    expect(noDaemon.stderr).toContain("rps-ctl: no daemon is running on")
  }, 60_000)
})

/** Polls `check` (real time: a child process works at its own pace) until it holds, or fails after `ms`. */
const until = async (what: string, check: () => Promise<boolean> | boolean, ms = 30_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const outputStats = async (dir: string): Promise<Partial<Output.OutputStats>> =>
  (await call(dir, "stats") as { output?: Output.OutputStats }).output ?? {}

/** The daemon stopped by itself with code 0 and removed its pid file and FIFOs. */
const stoppedCleanly = async (daemon: ReturnType<typeof start>, dir: string) => {
  expect(await daemon.exited).toEqual({ code: 0, signal: null })
  expect(fs.readdirSync(dir)).toEqual([])
}

describe("rps-daemon when its outputs go away", () => {
  it("stderr's reader gone: logging goes on silently, SIGTERM still stops it cleanly with its stopped line", async () => {
    const dir = tempDir()
    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--rate", "300"])
    await daemon.waitFor("the ready line", event("ready"))
    daemon.closePipe("stderr")
    // Each unknown byte logs a warning; once one of them met the closed pipe, stderr is lost.
    await until("a log line met the closed stderr", async () => {
      writeCmd(dir, "Z")
      return (await outputStats(dir)).stderrLost === true
    })
    writeCmd(dir, "ZZD\n")
    await daemon.waitFor("a dump after the loss", event("dump", (d) => d.cause === "command D"))
    daemon.kill("SIGTERM")
    const stopped = await daemon.waitFor("the stopped line", event("stopped"))
    expect(stopped).toMatchObject({ reason: "quit", cause: "SIGTERM", exitCode: 0 })
    expect(stopped.stats.output.stderrLost).toBe(true)
    expect(stopped.stats.output.stdoutLost).toBe(false)
    expect(stopped.stats.unknownCommands).toBeGreaterThanOrEqual(3)
    addsUp(stopped.stats)
    await stoppedCleanly(daemon, dir)
  }, 90_000)

  it("stdout's reader gone: the daemon goes on, stops cleanly on SIGTERM, and the stopped line goes to stderr", async () => {
    const dir = tempDir()
    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--rate", "300", "--status-interval", "50"])
    await daemon.waitFor("the ready line", event("ready"))
    daemon.closePipe("stdout")
    await until("a status line met the closed stdout", async () => (await outputStats(dir)).stdoutLost === true)
    writeCmd(dir, "D")
    expect((await call(dir, "stats") as { pid: number }).pid).toBe(daemon.pid)
    daemon.kill("SIGTERM")
    await stoppedCleanly(daemon, dir)
    const stopped = daemon.stderr().split("\n").flatMap((line) => {
      if (!line.startsWith("{")) return []
      const picked = event("stopped")(JSON.parse(line))
      return picked === undefined ? [] : [picked]
    })
    expect(stopped).toHaveLength(1)
    expect(stopped[0]).toMatchObject({ reason: "quit", cause: "SIGTERM", exitCode: 0 })
    expect(stopped[0].stats.output.stdoutLost).toBe(true)
    addsUp(stopped[0].stats)
  }, 90_000)

  it("rps.out's reader gone: replies go on to the next reader, and the daemon stops cleanly", async () => {
    const dir = tempDir()
    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--rate", "100"])
    await daemon.waitFor("the ready line", event("ready"))
    // A reader that reads one reply and goes away with others still unread.
    const out = path.join(dir, "rps.out")
    const reader = fs.openSync(out, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    writeCmd(dir, '{"jsonrpc":"2.0","method":"stats","id":"gone-1"}\n{"jsonrpc":"2.0","method":"stats","id":"gone-2"}\n')
    const buffer = Buffer.alloc(1 << 16)
    let read = ""
    await until("the first reply arrived", () => {
      try {
        read += buffer.subarray(0, fs.readSync(reader, buffer)).toString()
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error
      }
      return read.includes("\n")
    })
    fs.closeSync(reader)
    writeCmd(dir, '{"jsonrpc":"2.0","method":"stats","id":"gone-3"}\n')
    // The next client skips the stale replies and gets its own.
    expect((await call(dir, "stats") as { pid: number }).pid).toBe(daemon.pid)
    daemon.kill("SIGTERM")
    const stopped = await daemon.waitFor("the stopped line", event("stopped"))
    expect(stopped.stats.control.replies).toBe(4)
    addsUp(stopped.stats)
    await stoppedCleanly(daemon, dir)
  }, 90_000)
})

describe("rps-daemon output stays bounded", () => {
  it("1 MiB of unknown command bytes: all counted, at most 50 log lines a second (plus a summary) on stderr", async () => {
    const dir = tempDir()
    const begin = performance.now()
    // Frequent status ticks, each of which may write the summary: still one a second at most.
    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--rate", "0", "--status-interval", "50"])
    await daemon.waitFor("the ready line", event("ready"))
    const size = 1 << 20
    const writer = spawn("sh", ["-c", `head -c ${size} /dev/zero | tr '\\0' Z > "$0"`, path.join(dir, "rps.cmd")], {
      stdio: "ignore"
    })
    expect(await new Promise((resolve) => writer.on("exit", resolve))).toBe(0)
    // The FIFO may still be full of the flood: a blocking write waits for room
    // (a non-blocking one would fail with EAGAIN).
    const dumper = spawn("sh", ["-c", `printf 'D\\n' > "$0"`, path.join(dir, "rps.cmd")], { stdio: "ignore" })
    expect(await new Promise((resolve) => dumper.on("exit", resolve))).toBe(0)
    const dump = await daemon.waitFor(
      "a dump after every byte",
      event("dump", (d) => d.cause === "command D" && d.control.bytesRead >= size + 2),
      150_000
    )
    expect(dump.unknownCommands + dump.control.commandBytesRefused).toBe(size)
    daemon.kill("SIGTERM")
    const stopped = await daemon.waitFor("the stopped line", event("stopped"))
    await stoppedCleanly(daemon, dir)
    const seconds = (performance.now() - begin) / 1000
    const lines = daemon.stderr().split("\n").filter((l) => l.length > 0)
    // The daemon-side bound holds whatever the event loop logs per byte:
    // 50 lines a second (the documented budget) and a summary.
    expect(lines.length).toBeLessThanOrEqual((50 + 2) * (Math.ceil(seconds) + 1))
    expect(daemon.stderr().length).toBeLessThanOrEqual(lines.length * 1024)
    expect(stopped.stats.unknownCommands + stopped.stats.control.commandBytesRefused).toBe(size)
    expect(stopped.stats.output.logLines).toBe(lines.length)
    expect(Output.defaultLimits.logsPerSecond).toBe(50)
  }, 180_000)

  it("a 1 MiB batch of 524,286 items gets one short -32600, and the daemon goes on", async () => {
    const dir = tempDir()
    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--rate", "0"])
    await daemon.waitFor("the ready line", event("ready"))
    const [refused, after] = await rawExchange(dir, [
      `[${Array(524_286).fill("1").join(",")}]`,
      '{"jsonrpc":"2.0","method":"stats","id":"after"}'
    ])
    expect(JSON.stringify(refused).length).toBeLessThan(300)
    expect(refused).toMatchObject({ error: { code: -32600 }, id: null })
    expect(refused.error.message).toContain("more than the limit of 1000")
    expect(after).toMatchObject({ id: "after", result: { pid: daemon.pid } })
    daemon.kill("SIGTERM")
    await daemon.waitFor("the stopped line", event("stopped"))
    await stoppedCleanly(daemon, dir)
  }, 90_000)
})
