import { describe, expect, it } from "@effect/vitest"
import { Agenda, EventLoop, Platform } from "@refpersys/core"
import { Deferred, Effect, Exit, Fiber, Option } from "effect"
import * as LinuxPlatform from "../src/LinuxPlatform.js"
import * as Native from "../src/internal/native.js"
import { pipeInScope, puller } from "./util.js"

const addon = Native.addon

if (addon !== undefined) {
  describe("LinuxPlatform watches of fds closed by their user", () => {
    it.scopedLive("an fd closed between two reports ends the watch with an error report (libuv would abort on re-arming it)", () =>
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

    it.scopedLive("an fd closed while its poll is armed does not abort the process: the addon polls its own duplicate", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const p = yield* pipeInScope(addon)
        const pull = yield* puller(yield* platform.watch(p.readFd, { read: true }))
        // The pull arms the poll; the fd is closed before libuv polls again.
        const waiting = yield* Effect.fork(pull)
        yield* Effect.yieldNow()
        p.closeRead()
        // Two full turns of Node's loop: libuv has re-registered its fds with epoll.
        const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        yield* turn
        yield* turn
        const other = yield* pipeInScope(addon)
        const otherNext = yield* puller(yield* platform.watch(other.readFd, { read: true }))
        addon.sendByte(other.writeFd, 2)
        expect((yield* otherNext).read).toBe(true)
        yield* Fiber.interrupt(waiting)
      }))

    it.scopedLive("through the event loop, a handler may close the fd it watches: it is told with an error event", () =>
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
              if (event.error || event.hup) Deferred.unsafeDone(told, Exit.succeed(seen))
            })
        })
        addon.sendByte(p.writeFd, 1)
        expect(yield* Deferred.await(told)).toEqual(["read", "error"])
        expect((yield* loop.stats).state).toBe("running")
      }))
  })
} else {
  describe("LinuxPlatform watches", () => {
    it("need the native addon", () => {
      expect(Native.loadError).toBeDefined()
    })
  })
}
