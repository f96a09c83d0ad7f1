import { it } from "@effect/vitest"
import { afterAll, describe, expect } from "vitest"
import { Agenda, EventLoop, Platform } from "@refpersys/core"
import { LinuxPlatform, NodePlatform } from "@refpersys/platform-linux"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { Context, Effect, Layer, Schema } from "effect"
import * as Client from "../src/Client.js"
import * as Control from "../src/Control.js"
import * as JsonRpc from "../src/JsonRpc.js"
import { ReplyWriter } from "../src/internal/replyWriter.js"
import * as RuntimeDir from "../src/RuntimeDir.js"
import { removeTempDirs, tempDir as makeTempDir } from "./helpers/child.js"

afterAll(removeTempDirs)

const tempDir = () => makeTempDir("rps-control-")

/** Polls `check` until it holds (real time: the channel's retries are timed), or dies after `ms`. */
const until = (check: () => boolean, what: string, ms = 10_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting until ${what}`))
      yield* Effect.sleep("5 millis")
    }
  })

const methods: JsonRpc.Methods = {
  echo: JsonRpc.method({
    description: "returns its text",
    params: Schema.Struct({ text: Schema.String }),
    result: Schema.String,
    handle: ({ text }) => Effect.succeed(text)
  })
}

const writeCmd = (files: RuntimeDir.Files, text: string) => {
  const fd = fs.openSync(files.cmd, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
  try {
    fs.writeSync(fd, text)
  } finally {
    fs.closeSync(fd)
  }
}

const channel = (
  layer: Layer.Layer<Platform.Platform, Platform.PlatformError>,
  options: Partial<Pick<Control.Options, "stallMs" | "maxPendingBytes">> = {}
) =>
  Effect.gen(function*() {
    const { files } = yield* RuntimeDir.acquire(tempDir())
    const platform = Context.get(yield* Layer.build(layer), Platform.Platform)
    const agenda = yield* Agenda.make({ workers: 1 })
    // No signals: this runs inside the test process.
    const loop = yield* EventLoop.make({ signals: [] }).pipe(
      Effect.provideService(Platform.Platform, platform),
      Effect.provideService(Agenda.Agenda, agenda)
    )
    let bound = 0
    yield* loop.register({ explanation: "count A", match: { _tag: "Command", byte: "A" }, handle: () => Effect.sync(() => bound++) })
    const control = yield* Control.make({ files, methods, stallMs: 100, maxLine: 4096, ...options }).pipe(
      Effect.provideService(EventLoop.EventLoop, loop),
      Effect.provideService(Platform.Platform, platform)
    )
    return { files, loop, control, bound: () => bound }
  })

const platforms: Array<[string, Layer.Layer<Platform.Platform, Platform.PlatformError>]> = [
  ["node-portable", NodePlatform.layer()]
]
if (LinuxPlatform.isAvailable) platforms.unshift(["linux-native", LinuxPlatform.layer()])

describe.each(platforms)("Control on %s", (_name, layer) => {
  it.live("answers JSON-RPC requests through the FIFO pair", () =>
    Effect.gen(function*() {
      const { control, files } = yield* channel(layer)
      expect(yield* Client.call(files.dir, "echo", { params: { text: "hi" } })).toBe("hi")
      const error = yield* Effect.flip(Client.call(files.dir, "nope"))
      expect(error.reason).toBe("Remote")
      expect(error.code).toBe(JsonRpc.ErrorCode.MethodNotFound)
      expect(control.stats()).toMatchObject({ requests: 2, errors: 1, replies: 2 })
    }))

  it.live("passes command bytes to the loop, where unknown ones are counted", () =>
    Effect.gen(function*() {
      const { bound, control, files, loop } = yield* channel(layer)
      writeCmd(files, "A Z\nA")
      yield* until(() => bound() === 2, "both A commands ran")
      yield* until(() => control.stats().commandBytes === 3, "three command bytes were read")
      const stats = yield* loop.stats
      expect(stats.unknownCommands).toBe(1)
      expect(stats.events.Command).toBe(3)
    }))

  it.live("replies -32700 to a malformed line and -32600 to an overlong one, and goes on", () =>
    Effect.gen(function*() {
      const { control, files } = yield* channel(layer)
      const replies = yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* Client.connect(files.dir)
        yield* connection.send('{"jsonrpc":"2.0","method":"echo"\n')
        const parse = yield* connection.next(() => true, "5 seconds")
        yield* connection.send(`{"x":"${"y".repeat(5000)}"}\n`)
        const overlong = yield* connection.next(() => true, "5 seconds")
        return [parse, overlong] as Array<{ error: { code: number } }>
      }))
      expect(replies.map((r) => r.error.code)).toEqual([-32700, -32600])
      expect(control.stats().overlong).toBe(1)
      expect(yield* Client.call(files.dir, "echo", { params: { text: "still here" } })).toBe("still here")
    }))

  it.live("reopen recreates a removed FIFO and serves on the new one", () =>
    Effect.gen(function*() {
      const { control, files } = yield* channel(layer)
      fs.rmSync(files.cmd)
      expect(yield* control.reopen).toEqual([files.cmd])
      expect(yield* Client.call(files.dir, "echo", { params: { text: "after" } })).toBe("after")
      expect(control.stats().reopens).toBe(1)
    }))

  it.live("reopen refuses a FIFO put in place of ours that is not ours, and leaves it there", () =>
    Effect.gen(function*() {
      const { control, files } = yield* channel(layer)
      fs.rmSync(files.cmd)
      expect(spawnSync("mkfifo", ["-m", "666", files.cmd]).status).toBe(0)
      const error = yield* Effect.flip(control.reopen)
      expect(error._tag).toBe("RuntimeDirError")
      expect(error.message).toContain("mode is 0666")
      expect(fs.lstatSync(files.cmd).mode & 0o777).toBe(0o666)
    }))

  it.live("discards stale replies from a full reply FIFO nobody reads, then serves again", () =>
    Effect.gen(function*() {
      const { control, files } = yield* channel(layer)
      const big = "b".repeat(3000)
      const line = `${JsonRpc.requestLine("echo", 0, { text: big })}\n`
      // ~120 KiB of replies: more than a pipe holds (64 KiB), and no reader.
      for (let i = 1; i <= 40; i++) {
        writeCmd(files, line)
        yield* until(() => control.stats().requests === i, `request ${i} was handled`)
      }
      yield* until(() => control.stats().replies === 40, "40 replies were queued")
      yield* until(() => control.stats().discardedBytes > 0, "stale replies were discarded")
      expect(yield* Client.call(files.dir, "echo", { params: { text: "fresh" }, timeout: "10 seconds" })).toBe("fresh")
    }))
  it.live("keeps at most maxPendingBytes of unread replies, dropping the oldest first and counting them", () =>
    Effect.gen(function*() {
      const cap = 16 * 1024
      // No stale discards here: only the cap may drop replies.
      const { control, files } = yield* channel(layer, { stallMs: 600_000, maxPendingBytes: cap })
      const big = "b".repeat(3000)
      const n = 60
      // ~180 KiB of replies and no reader: the FIFO takes 64 KiB, the buffer at most the cap.
      for (let i = 1; i <= n; i++) {
        writeCmd(files, `${JsonRpc.requestLine("echo", i, { text: big })}\n`)
        yield* until(() => control.stats().replies === i, `reply ${i} was produced`)
        expect(control.stats().replyBytesWaiting).toBeLessThanOrEqual(cap + 3100)
      }
      const dropped = control.stats().repliesDropped
      expect(dropped).toBeGreaterThan(0)
      // A reader gets whole replies in order, the newest among them, and nothing else.
      const reader = fs.openSync(files.out, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.closeSync(reader)))
      const buffer = Buffer.alloc(1 << 16)
      let text = ""
      yield* until(() => {
        try {
          text += buffer.subarray(0, fs.readSync(reader, buffer)).toString()
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error
        }
        return text.split("\n").length - 1 === n - dropped
      }, "every reply not dropped was read")
      const ids = text.trim().split("\n").map((line) => (JSON.parse(line) as { id: number; result: string }).id)
      expect(ids[ids.length - 1]).toBe(n)
      expect(ids).toEqual([...ids].sort((a, b) => a - b))
      expect(control.stats()).toMatchObject({ replies: n, repliesDropped: dropped, replyBytesWaiting: 0 })
    }))
})

describe("ReplyWriter", () => {
  it.effect("a reader gone (EPIPE) drops what is pending, counts it, and later replies reach the next reader", () =>
    Effect.gen(function*() {
      const fifo = `${tempDir()}/out`
      expect(spawnSync("mkfifo", [fifo]).status).toBe(0)
      const open = (flags: number) =>
        Effect.acquireRelease(Effect.sync(() => fs.openSync(fifo, flags | fs.constants.O_NONBLOCK)), (fd) =>
          Effect.sync(() => {
            try {
              fs.closeSync(fd)
            } catch {
              // closed by the test already
            }
          }))
      const first = yield* open(fs.constants.O_RDONLY)
      const writer = new ReplyWriter(yield* open(fs.constants.O_WRONLY), 100)
      const readAll = (fd: number) => {
        const buffer = Buffer.alloc(4096)
        return buffer.subarray(0, fs.readSync(fd, buffer)).toString()
      }
      writer.write("one")
      expect(readAll(first)).toBe("one\n")
      fs.closeSync(first)
      // Nobody reads the FIFO now: the write fails with EPIPE, and must not throw.
      writer.write("two")
      expect(writer).toMatchObject({ replies: 2, repliesDropped: 1, lastError: "EPIPE", blocked: false, waiting: 0 })
      const second = yield* open(fs.constants.O_RDONLY)
      writer.write("three")
      expect(readAll(second)).toBe("three\n")
      expect(writer.repliesDropped).toBe(1)
    }))
})

describe("Client", () => {
  it.effect("NoDaemon when the runtime directory has no FIFOs", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Client.call(tempDir(), "stats"))
      expect(error.reason).toBe("NoDaemon")
      expect(error.message).toContain("does not exist")
    }))

  it.effect("NoDaemon when nothing reads rps.cmd, naming a dead recorded pid", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      spawnSync("mkfifo", ["-m", "600", f.cmd, f.out])
      const dead = spawnSync(process.execPath, ["-e", "0"]).pid!
      fs.writeFileSync(f.pid, `${dead}\n`)
      const error = yield* Effect.flip(Client.call(f.dir, "stats"))
      expect(error.reason).toBe("NoDaemon")
      expect(error.message).toContain(`nothing reads ${f.cmd}`)
      expect(error.message).toContain(`pid ${dead}`)
    }))

  it.live("Timeout when a reader never replies", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      spawnSync("mkfifo", ["-m", "600", f.cmd, f.out])
      // A silent "daemon": it holds both FIFOs open and never answers.
      const cmd = fs.openSync(f.cmd, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
      const out = fs.openSync(f.out, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
      const error = yield* Effect.flip(Client.call(f.dir, "stats", { timeout: "200 millis" })).pipe(
        Effect.ensuring(Effect.sync(() => {
          fs.closeSync(cmd)
          fs.closeSync(out)
        }))
      )
      expect(error.reason).toBe("Timeout")
      expect(error.message).toContain("no reply")
    }))

  it.live("a negative timeout is no wait at all: Timeout at once, reported as zero", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      spawnSync("mkfifo", ["-m", "600", f.cmd, f.out])
      const cmd = fs.openSync(f.cmd, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
      const out = fs.openSync(f.out, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
      // Duration keeps negative values; the client must not report a wait of "-5s".
      const error = yield* Effect.flip(Client.call(f.dir, "stats", { timeout: "-5 seconds" })).pipe(
        Effect.ensuring(Effect.sync(() => {
          fs.closeSync(cmd)
          fs.closeSync(out)
        }))
      )
      expect(error.reason).toBe("Timeout")
      expect(error.message).toMatch(/within 0\w*$/)
      expect(error.message).not.toContain("-5")
    }))
})
