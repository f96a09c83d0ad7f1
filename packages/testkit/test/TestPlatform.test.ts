import { describe, it } from "@effect/vitest"
import { Platform } from "@refpersys/core"
import { Cause, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { expect } from "vitest"
import { TestPlatform } from "../src/index.js"

const withPlatform = <A, E, R>(effect: Effect.Effect<A, E, R>, options?: TestPlatform.Options) =>
  Effect.provide(effect, TestPlatform.layer(options))

const services = Effect.all([Platform.Platform, TestPlatform.TestPlatform])

const collect = <A, E>(stream: Stream.Stream<A, E>, n: number) => Stream.runCollect(Stream.take(stream, n))

const nothing = { read: false, write: false, hup: false, error: false }

describe("TestPlatform", () => {
  describe("info", () => {
    it.effect("is named test, watches 128 fds and has real-time signals by default", () =>
      withPlatform(Effect.gen(function*() {
        const platform = yield* Platform.Platform
        expect(platform.info).toEqual({ name: "test", maxFds: 128, realtimeSignals: true })
      })))

    it.effect("takes maxFds and realtimeSignals from the options", () =>
      withPlatform(
        Effect.map(Platform.Platform, (platform) =>
          expect(platform.info).toEqual({ name: "test", maxFds: 4, realtimeSignals: false })),
        { maxFds: 4, realtimeSignals: false }
      ))

    it.effect("dies on a maxFds that is not a positive integer", () =>
      Effect.gen(function*() {
        for (const maxFds of [0, 1.5, -3]) {
          const exit = yield* Effect.exit(Effect.scoped(TestPlatform.make({ maxFds })))
          expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
        }
      }))
  })

  describe("signals", () => {
    it.effect("an unclaimed signal is counted and dropped; a claimed one is delivered to its claim", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        expect(yield* test.signal("SIGUSR1")).toBe(false)
        expect(yield* test.unclaimed).toBe(1)

        yield* Effect.scoped(Effect.gen(function*() {
          const signals = yield* platform.signals(["SIGUSR1"])
          expect([...(yield* test.claimed)]).toEqual(["SIGUSR1"])
          expect(yield* test.signal("SIGUSR2")).toBe(false)
          expect(yield* test.signal("SIGUSR1")).toBe(true)
          expect(yield* collect(signals, 1)).toEqual(["SIGUSR1"])
          expect(yield* test.unclaimed).toBe(2)
        }))

        // The claim ended with its scope.
        expect((yield* test.claimed).size).toBe(0)
        expect(yield* test.signal("SIGUSR1")).toBe(false)
        expect(yield* test.unclaimed).toBe(3)
      })))

    it.effect("overlapping claims each get the signal; claimed is their union and shrinks as scopes close", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const outer = yield* Scope.make()
        const inner = yield* Scope.make()
        const both = yield* Scope.provide(platform.signals(["SIGUSR1", "SIGHUP"]), outer)
        const one = yield* Scope.provide(platform.signals(["SIGUSR1"]), inner)
        expect([...(yield* test.claimed)].sort()).toEqual(["SIGHUP", "SIGUSR1"])

        yield* test.signal("SIGUSR1")
        yield* test.signal("SIGHUP")
        expect(yield* collect(both, 2)).toEqual(["SIGUSR1", "SIGHUP"])
        expect(yield* collect(one, 1)).toEqual(["SIGUSR1"])

        yield* Scope.close(inner, Exit.void)
        expect([...(yield* test.claimed)].sort()).toEqual(["SIGHUP", "SIGUSR1"])
        // The closed claim's stream has ended.
        expect(yield* Stream.runCollect(one)).toEqual([])
        yield* Scope.close(outer, Exit.void)
        expect((yield* test.claimed).size).toBe(0)
        expect(yield* test.unclaimed).toBe(0)
      })))

    it.effect("a list with a bad name claims nothing, and the error says why and what is accepted", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const killed = yield* Effect.flip(Effect.scoped(platform.signals(["SIGUSR1", "SIGKILL"])))
        expect(killed.reason).toBe("InvalidSignal")
        expect(killed.operation).toBe("signals")
        expect(killed.detail).toContain("SIGKILL cannot be claimed")
        expect(killed.detail).toMatch(/claimable on the test platform: SIGHUP, SIGINT, .*SIGUSR1.*SIGRTMIN/)
        expect(killed.detail).not.toMatch(/claimable on the test platform: .*SIGKILL/)
        expect((yield* test.claimed).size).toBe(0)

        const unknown = yield* Effect.flip(Effect.scoped(platform.signals(["SIGNOPE"])))
        expect(unknown.detail).toContain(`"SIGNOPE" is not a signal name`)
        const outOfRange = yield* Effect.flip(Effect.scoped(platform.signals(["SIGRTMIN+33"])))
        expect(outOfRange.detail).toContain("SIGRTMIN+33 is not a real-time signal name")
      })))

    it.effect("without real-time signals, SIGRTMIN+n is refused and not listed as accepted", () =>
      withPlatform(
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const error = yield* Effect.flip(Effect.scoped(platform.signals(["SIGRTMIN+1"])))
          expect(error.reason).toBe("InvalidSignal")
          expect(error.detail).toContain("SIGRTMIN+1 is a real-time signal and the test platform has none")
          expect(error.detail.split("claimable on the test platform:")[1]).not.toContain("SIGRT")
        }),
        { realtimeSignals: false }
      ))
  })

  describe("timer", () => {
    it.effect("arms records every deadline; only the last one fires, and then armed is cleared", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const timer = yield* platform.timer
        yield* timer.arm(300)
        yield* timer.arm(100)
        yield* timer.arm(200)
        expect(yield* test.arms).toEqual([300, 100, 200])
        expect(yield* test.armed).toBe(200)

        yield* TestClock.adjust(150)
        expect(yield* test.armed).toBe(200)
        yield* TestClock.adjust(150)
        // Had 100 survived re-arming, it would have been emitted first.
        expect(yield* collect(timer.fired, 1)).toEqual([200])
        expect(yield* test.armed).toBeUndefined()
        expect(yield* test.arms).toEqual([300, 100, 200])
      })))

    it.effect("never fires before its deadline", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const timer = yield* platform.timer
        const fired = yield* Effect.forkChild(collect(timer.fired, 1))
        yield* timer.arm(50)
        yield* TestClock.adjust(49)
        expect(yield* test.armed).toBe(50)
        expect(fired.pollUnsafe()).toBeUndefined()
        yield* TestClock.adjust(1)
        expect(yield* Fiber.join(fired)).toEqual([50])
        expect(yield* test.armed).toBeUndefined()
      })))

    it.effect("a deadline already passed fires at once", () =>
      withPlatform(Effect.gen(function*() {
        const platform = yield* Platform.Platform
        yield* TestClock.adjust(1_000)
        const timer = yield* platform.timer
        yield* timer.arm(400)
        expect(yield* collect(timer.fired, 1)).toEqual([400])
      })))

    it.effect("disarm clears armed, keeps the history, and the cancelled deadline never fires", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const timer = yield* platform.timer
        yield* timer.arm(50)
        yield* timer.disarm
        expect(yield* test.armed).toBeUndefined()
        yield* TestClock.adjust(100)
        yield* timer.arm(150)
        yield* TestClock.adjust(50)
        expect(yield* collect(timer.fired, 1)).toEqual([150])
        expect(yield* test.arms).toEqual([50, 150])
      })))

    it.effect("one timer at a time; closing its scope disarms it, ends fired and frees it", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const scope = yield* Scope.make()
        const timer = yield* Scope.provide(platform.timer, scope)
        const fired = yield* Effect.forkChild(Stream.runCollect(timer.fired))
        yield* timer.arm(100)

        const busy = yield* Effect.flip(Effect.scoped(platform.timer))
        expect(busy.reason).toBe("Unsupported")
        expect(busy.detail).toContain("another scope holds it")

        yield* Scope.close(scope, Exit.void)
        expect(yield* test.armed).toBeUndefined()
        expect(yield* Fiber.join(fired)).toEqual([])
        const late = yield* Effect.exit(timer.arm(200))
        expect(Exit.isFailure(late) && Cause.hasDies(late.cause)).toBe(true)

        yield* Effect.scoped(Effect.flatMap(platform.timer, (again) => again.arm(300)))
        expect(yield* test.arms).toEqual([100, 300])
      })))
  })

  describe("watch", () => {
    it.effect("markClosed and markRegularFile make watch fail with BadFd, and openFd skips them", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        expect(yield* test.openFd).toBe(3)
        yield* test.markClosed(4)
        yield* test.markRegularFile(5)
        expect(yield* test.openFd).toBe(6)

        const closed = yield* Effect.flip(platform.watch(4, { read: true }))
        expect(closed).toMatchObject({ operation: "watch", reason: "BadFd" })
        expect(closed.detail).toContain("fd 4 is closed")
        const file = yield* Effect.flip(platform.watch(5, { read: true }))
        expect(file.reason).toBe("BadFd")
        expect(file.detail).toContain("regular file")
        for (const fd of [-1, 2.5]) {
          expect((yield* Effect.flip(platform.watch(fd, { read: true }))).reason).toBe("BadFd")
        }
        // The refusals watched nothing.
        expect((yield* test.watched).size).toBe(0)
        yield* platform.watch(6, { read: true })
        expect([...(yield* test.watched)]).toEqual([6])
      })))

    it.effect("markClosed on a watched fd reports an error and ends the watch", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const reports = yield* platform.watch(7, { read: true })
        yield* test.markClosed(7)
        expect((yield* test.watched).has(7)).toBe(false)
        expect(yield* Stream.runCollect(reports)).toEqual([{ ...nothing, error: true }])
      })))

    it.effect("watched gains an fd on watch and loses it at a hang-up or when the watch's scope closes", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const scope = yield* Scope.make()
        yield* Scope.provide(platform.watch(3, { read: true }), scope)
        yield* Scope.provide(platform.watch(4, { write: true }), scope)
        expect([...(yield* test.watched)].sort()).toEqual([3, 4])

        // At once, before anyone reads the report.
        yield* test.hangup(3)
        expect([...(yield* test.watched)]).toEqual([4])
        yield* Scope.close(scope, Exit.void)
        expect((yield* test.watched).size).toBe(0)
      })))

    it.effect("ready needs a watched fd and drops what the interest does not ask for", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        const unwatched = yield* Effect.flip(test.ready(9, { read: true }))
        expect(unwatched).toMatchObject({ operation: "ready", reason: "BadFd" })
        expect(unwatched.detail).toContain("not watched")

        const reports = yield* platform.watch(9, { read: true })
        yield* test.ready(9, { write: true })
        yield* test.ready(9, { read: true, write: true })
        yield* test.hangup(9)
        expect(yield* Stream.runCollect(reports)).toEqual([
          { ...nothing, read: true },
          { ...nothing, hup: true }
        ])
        expect((yield* Effect.flip(test.hangup(9))).reason).toBe("BadFd")
      })))

    it.effect("refuses a second watch of an fd and watches beyond maxFds", () =>
      withPlatform(
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          yield* platform.watch(3, { read: true })
          const twice = yield* Effect.flip(platform.watch(3, { write: true }))
          expect(twice.reason).toBe("AlreadyWatched")
          yield* platform.watch(4, { read: true })
          const tooMany = yield* Effect.flip(platform.watch(5, { read: true }))
          expect(tooMany.reason).toBe("TooManyFds")
          expect(tooMany.detail).toContain("the limit is 2")
        }),
        { maxFds: 2 }
      ))
  })

  describe("child exits", () => {
    it.effect("childExit adds exits to childExits in order", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        yield* test.childExit(12, 0)
        yield* test.childExit(13, null, "SIGKILL")
        expect(yield* collect(platform.childExits, 2)).toEqual([
          { pid: 12, code: 0, signal: null },
          { pid: 13, code: null, signal: "SIGKILL" }
        ])
      })))
  })

  describe("commands", () => {
    it.effect("sent counts accepted bytes; received counts delivered ones, and a partial read loses none", () =>
      withPlatform(Effect.gen(function*() {
        const [platform, test] = yield* services
        yield* platform.commands.send(1)
        yield* platform.commands.send(2)
        platform.commands.unsafeSend(3)
        yield* Effect.flip(platform.commands.send(300))
        expect(yield* test.sent).toBe(3)
        expect(yield* test.received).toBe(0)

        expect(yield* collect(platform.commands.received, 2)).toEqual([1, 2])
        expect(yield* test.received).toBe(2)
        expect(yield* collect(platform.commands.received, 1)).toEqual([3])
        expect(yield* test.received).toBe(3)
      })))
  })

  describe("closing", () => {
    it.effect("after its scope closes the platform refuses work with Closed and its streams end", () =>
      Effect.gen(function*() {
        const { platform } = yield* Effect.scoped(TestPlatform.make())
        const refusals = [
          yield* Effect.flip(platform.commands.send(1)),
          yield* Effect.flip(Effect.scoped(platform.signals(["SIGUSR1"]))),
          yield* Effect.flip(Effect.scoped(platform.watch(3, { read: true }))),
          yield* Effect.flip(Effect.scoped(platform.timer))
        ]
        expect(refusals.map((e) => e.reason)).toEqual(["Closed", "Closed", "Closed", "Closed"])
        expect(() => platform.commands.unsafeSend(1)).toThrow(/Closed/)
        expect(yield* Stream.runCollect(platform.commands.received)).toEqual([])
        expect(yield* Stream.runCollect(platform.childExits)).toEqual([])
      }))

    it.effect("the streams of a closing platform end", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const { platform } = yield* Scope.provide(TestPlatform.make(), scope)
        const signals = yield* Scope.provide(platform.signals(["SIGUSR1"]), scope)
        const reports = yield* Scope.provide(platform.watch(3, { read: true }), scope)
        const ends = yield* Effect.forkChild(Effect.all([Stream.runCollect(signals), Stream.runCollect(reports)]))
        yield* Scope.close(scope, Exit.void)
        expect(yield* Fiber.join(ends)).toEqual([[], []])
      }))
  })

  describe("fromPlatform", () => {
    it.effect("finds the control service of the layer's platform", () =>
      withPlatform(Effect.gen(function*() {
        const test = yield* TestPlatform.TestPlatform
        expect(yield* TestPlatform.fromPlatform).toBe(test)
        expect(test.platform).toBe(yield* Platform.Platform)
      })))

    it.effect("dies for a platform that is not a test platform", () =>
      Effect.gen(function*() {
        const { platform } = yield* Effect.scoped(TestPlatform.make())
        const foreign: Platform.Platform = { ...platform, info: { ...platform.info, name: "elsewhere" } }
        const exit = yield* Effect.exit(Effect.provide(TestPlatform.fromPlatform, Layer.succeed(Platform.Platform, foreign)))
        expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
        expect(Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause)).toContain(`"elsewhere" is not a test platform`)
      }))
  })
})
