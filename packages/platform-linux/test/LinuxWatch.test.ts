import { describe, expect, it } from "@effect/vitest"
import { Agenda, EventLoop, Platform } from "@refpersys/core"
import { Deferred, Effect, Exit, Fiber, Option } from "effect"
import * as LinuxPlatform from "../src/LinuxPlatform.js"
import * as Native from "../src/internal/native.js"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
import { exited, pipeInScope, puller } from "./util.js"

const addon = Native.addon

if (addon !== undefined) {
  describe("LinuxPlatform watches of fds closed by their user", () => {
    it.live("an fd closed between two reports ends the watch with an error report (libuv would abort on re-arming it)", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const p = yield* pipeInScope(addon)
        const next = yield* puller(yield* platform.watch(p.readFd, { read: true }))
        addon.sendByte(p.writeFd, 1)
        expect(yield* next).toEqual({ read: true, write: false, hup: false, error: false })
        p.closeRead()
        expect(yield* next).toEqual({ read: false, write: false, hup: false, error: true })
        expect(yield* Effect.flip(next)).toEqual(Option.none())
        // Node's loop goes on polling: another watch still gets its report.
        const other = yield* pipeInScope(addon)
        const otherNext = yield* puller(yield* platform.watch(other.readFd, { read: true }))
        addon.sendByte(other.writeFd, 2)
        expect((yield* otherNext).read).toBe(true)
      }))

    it.live("an fd closed while its poll is armed does not abort the process: the addon polls its own duplicate", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const p = yield* pipeInScope(addon)
        const pull = yield* puller(yield* platform.watch(p.readFd, { read: true }))
        // The pull arms the poll; the fd is closed before libuv polls again.
        const waiting = yield* Effect.forkChild(pull)
        yield* Effect.yieldNow
        // Opened first, so it cannot reuse the number of the fd closed next
        // (the watch of that number lasts until its next pull).
        const other = yield* pipeInScope(addon)
        p.closeRead()
        // Two full turns of Node's loop: libuv has re-registered its fds with epoll.
        const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        yield* turn
        yield* turn
        const otherNext = yield* puller(yield* platform.watch(other.readFd, { read: true }))
        addon.sendByte(other.writeFd, 2)
        expect((yield* otherNext).read).toBe(true)
        yield* Fiber.interrupt(waiting)
      }))

    it.live("through the event loop, a handler may close the fd it watches: it is told with an error event", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make({ ref: true })
        const agenda = yield* Agenda.make({ workers: 1 })
        const loop = yield* EventLoop.make({ signals: [] }).pipe(
          Effect.provideService(Platform.Platform, platform),
          Effect.provideService(Agenda.Agenda, agenda)
        )
        const p = yield* pipeInScope(addon)
        const told = yield* Deferred.make<ReadonlyArray<string>>()
        const seen: Array<string> = []
        yield* loop.watchFd(p.readFd, { read: true }, {
          explanation: "reads one message, then closes its end",
          handle: (event) =>
            Effect.sync(() => {
              seen.push(event.error ? "error" : event.hup ? "hup" : "read")
              if (event.read) {
                addon.readBytes(p.readFd, 16)
                p.closeRead()
              }
              if (event.error || event.hup) Deferred.doneUnsafe(told, Exit.succeed(seen))
            })
        })
        addon.sendByte(p.writeFd, 1)
        expect(yield* Deferred.await(told)).toEqual(["read", "error"])
        expect((yield* loop.stats).state).toBe("running")
      }))
  })

  describe("LinuxPlatform watch fd lifecycle", () => {
    it.live("thousands of watch/unwatch cycles under a 64-fd limit hold no fd past its unwatch", () =>
      Effect.gen(function*() {
        // A child of its own: the limit and the fd count are per process.
        const fixture = fileURLToPath(new URL("./fixtures/watch-churn.mjs", import.meta.url))
        const child = spawn(process.execPath, [fixture, "3000", "64"], {
          stdio: ["pipe", "pipe", "pipe"]
        })
        let out = ""
        let err = ""
        child.stdout.on("data", (chunk) => (out += String(chunk)))
        child.stderr.on("data", (chunk) => (err += String(chunk)))
        const code = yield* exited(child).pipe(
          Effect.timeoutOrElse({
            duration: "60 seconds",
            orElse: () => Effect.fail(new Error("the churn child did not end"))
          }),
          Effect.ensuring(Effect.sync(() => child.kill("SIGKILL")))
        )
        // Before the fix this was EMFILE within about 50 cycles.
        expect({ code, err }).toEqual({ code: 0, err: "" })
        const result = JSON.parse(out) as { limit: number; cycles: number; before: number; most: number; after: number }
        expect(result.limit).toBe(64)
        expect(result.cycles).toBe(3000)
        // The readdir of /proc/self/fd holds one fd while it counts; a watch holds none after its scope.
        expect(result.most).toBeLessThanOrEqual(result.before + 1)
        expect(result.after).toBe(result.before)
      }), 90_000)

    it.live("a watch of /dev/null says it is a character device without poll support, not a regular file", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const fd = yield* Effect.acquireRelease(
          Effect.sync(() => fs.openSync("/dev/null", "r")),
          (fd) => Effect.sync(() => fs.closeSync(fd))
        )
        const error = yield* Effect.flip(Effect.scoped(platform.watch(fd, { read: true })))
        expect(error.reason).toBe("BadFd")
        expect(error.errno).toBe("EPERM")
        expect(error.detail).toContain("character device")
        expect(error.detail).toContain("/dev/null")
        expect(error.detail).not.toContain("regular file")
      }))
  })
} else {
  describe("LinuxPlatform watches", () => {
    it("need the native addon", () => {
      expect(Native.loadError).toBeDefined()
    })
  })
}
