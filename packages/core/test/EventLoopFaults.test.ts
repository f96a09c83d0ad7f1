import { describe, it } from "@effect/vitest"
import { TestPlatform, TestTime } from "@refpersys/testkit"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Logger, Scope } from "effect"
import { expect } from "vitest"
import * as Agenda from "../src/Agenda.js"
import { InvalidOptions } from "../src/AgendaError.js"
import * as Event from "../src/Event.js"
import * as EventLoop from "../src/EventLoop.js"
import { InvalidEvent, InvalidHandlerResult, LoopFailed } from "../src/EventLoopError.js"

const eventually = TestTime.eventually

const captureLogs = (options: { readonly throwOn?: (line: string) => boolean } = {}) => {
  const lines: Array<string> = []
  const logger = Logger.make(({ cause, logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    const text = parts.map((p) => typeof p === "string" ? p : String(p)).join(" ")
    const line = `${logLevel.toUpperCase()} ${text}${cause.reasons.length === 0 ? "" : ` ${Cause.pretty(cause)}`}`
    lines.push(line)
    if (options.throwOn?.(line)) throw new Error(`logger broke on: ${line}`)
  })
  return { lines, layer: Logger.layer([logger]) }
}

const env = (agenda: Agenda.Options = {}) => Layer.merge(TestPlatform.layer(), Agenda.layer({ workers: 2, ...agenda }))

const statsOf = (loop: EventLoop.EventLoop, pick: (s: EventLoop.LoopStats) => boolean, what: string) =>
  eventually(Effect.map(loop.stats, pick), what)

/** A handler as a JS caller (or `any`) can write it: the types do not stop it. */
const untyped = (handle: unknown) => handle as (event: Event.Event) => Effect.Effect<void>

describe("EventLoop handler contract", () => {
  it.effect("a handler returning undefined, null, 42 or a promise is a counted, logged failure; the loop goes on", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const loop = yield* EventLoop.make()
      const results: Array<[string, unknown]> = [
        ["u", undefined],
        ["n", null],
        ["f", 42],
        ["p", Promise.resolve(1)]
      ]
      for (const [byte, result] of results) {
        yield* loop.register({
          explanation: `returns ${String(result)}`,
          match: { _tag: "Command", byte },
          handle: untyped((e: Event.Command) => {
            void e
            return result
          })
        })
      }
      // The same mistakes in a handler run beside another one (the general path).
      yield* loop.register({ explanation: "returns undefined too", match: { _tag: "Command", byte: "u" }, handle: untyped(() => undefined) })
      for (const [byte] of results) yield* loop.send(byte)
      yield* statsOf(loop, (s) => s.handlerFailures === 5, "5 handler failures")
      // Still dispatching, still quitting on Q.
      const stats = yield* loop.stats
      expect(stats.state).toBe("running")
      expect(stats.handlerCalls).toBe(5)
      const warned = logs.lines.filter((l) => l.startsWith("WARN") && l.includes("instead of an Effect"))
      expect(warned).toHaveLength(5)
      expect(warned.some((l) => l.includes(`handler "returns undefined"`) && l.includes("returned undefined"))).toBe(true)
      expect(warned.some((l) => l.includes("returned a Promise") && l.includes("Effect.promise"))).toBe(true)
      const dump = yield* loop.dump
      expect(dump.handlers.find((h) => h.explanation === "returns 42")).toMatchObject({ calls: 1, failures: 1 })
      yield* loop.send("Q")
      expect((yield* loop.awaitStop).cause).toBe("command Q")
    }).pipe(Effect.provide(env()), Effect.provide(logs.layer))
  })

  it.effect("a submitted handler returning a non-Effect fails its tasklet with InvalidHandlerResult", () =>
    Effect.gen(function*() {
      const loop = yield* EventLoop.make()
      yield* loop.register({ explanation: "forgot the Effect", match: { _tag: "Command", byte: "s" }, handle: untyped(() => undefined), run: "Normal" })
      yield* loop.send("s")
      yield* eventually(Effect.map(Agenda.stats, (s) => s.total.failed === 1), "the tasklet failed")
      yield* loop.send("Q")
      const stopped = yield* loop.awaitStop
      expect(stopped.agenda.stats.total).toMatchObject({ submitted: 1, failed: 1, balanced: true })
    }).pipe(Effect.provide(env({ logFailures: false }))))

  it.effect("InvalidHandlerResult names the handler, what it returned and the fix", () =>
    Effect.sync(() => {
      const error = new InvalidHandlerResult({ explanation: "log it", got: "undefined" })
      expect(error.message).toContain(`handler "log it" returned undefined instead of an Effect`)
      expect(error.message).toContain("Effect.sync")
    }))

  it("the handler's type asks for an Effect", () => {
    const options: EventLoop.HandlerOptions<{ readonly _tag: "Command" }, never> = {
      explanation: "types",
      match: { _tag: "Command" },
      // @ts-expect-error a handler returning nothing is not a handler
      handle: (e) => {
        void e
      }
    }
    expect(options.explanation).toBe("types")
    // Nor does register take one, whatever it infers for the match and error.
    const typeOnly = (loop: EventLoop.EventLoop) =>
      loop.register({
        explanation: "log every command",
        match: { _tag: "Command" },
        // @ts-expect-error `handle` must return an Effect
        handle: (e) => {
          console.log(e)
        }
      })
    expect(typeof typeOnly).toBe("function")
  })
})

describe("EventLoop post validation", () => {
  it.effect("posting null, {}, an unknown tag or a malformed event fails with InvalidEvent; the loop goes on", () =>
    Effect.gen(function*() {
      const loop = yield* EventLoop.make()
      const garbage: Array<unknown> = [
        null,
        undefined,
        {},
        42,
        { _tag: "Nope" },
        { _tag: "Command", byte: 300, at: 0 },
        { _tag: "Signal", at: 0 }
      ]
      for (const value of garbage) {
        const error = yield* Effect.flip(loop.post(value as Event.Event))
        expect(error).toBeInstanceOf(InvalidEvent)
        expect(error.message).toContain("post")
      }
      // The issue names the field at fault.
      const issueOf = (value: unknown) => Effect.map(Effect.flip(loop.post(value as Event.Event)), (e) => (e as InvalidEvent).issue)
      expect(yield* issueOf({ _tag: "Command", byte: 300, at: 0 })).toContain("byte")
      expect(yield* issueOf({ _tag: "Nope" })).toContain("_tag")
      expect(yield* issueOf({ _tag: "Signal", at: 0 })).toContain("signal")
      expect((yield* loop.stats).invalidPosts).toBe(garbage.length + 3)
      // A plain value the Event schema accepts is decoded and dispatched.
      const seen = yield* Deferred.make<Event.Command>()
      yield* loop.register({ explanation: "byte 1", match: { _tag: "Command", byte: 1 }, handle: (e) => Deferred.succeed(seen, e) })
      yield* loop.post({ _tag: "Command", byte: 1, at: 0 } as Event.Event)
      expect(yield* Deferred.await(seen)).toBeInstanceOf(Event.Command)
      yield* loop.send("Q")
      expect((yield* loop.awaitStop).cause).toBe("command Q")
    }).pipe(Effect.provide(env())))
})

describe("EventLoop registration validation", () => {
  const valid = { explanation: "x", handle: () => Effect.void }
  it.effect("register rejects bad match keys and a handle that is not a function, with typed errors naming the option", () =>
    Effect.gen(function*() {
      const loop = yield* EventLoop.make()
      const cases: Array<[unknown, string]> = [
        [{ ...valid, match: { _tag: "TimerFired", id: "x" } }, "match.id"],
        [{ ...valid, match: { _tag: "ChildExit", pid: -5 } }, "match.pid"],
        [{ ...valid, match: { _tag: "FdReady", fd: 1.5 } }, "match.fd"],
        [{ ...valid, match: { _tag: "Nope" } }, "match._tag"],
        [{ explanation: "x", match: { _tag: "Command" }, handle: 42 }, "handle"],
        [{ explanation: "x", match: { _tag: "Command" } }, "handle"],
        [null, "register"]
      ]
      for (const [options, option] of cases) {
        const error = yield* Effect.flip(loop.register(options as EventLoop.HandlerOptions<EventLoop.Match, never>))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect((error as InvalidOptions).option).toContain(option)
      }
      expect((yield* loop.dump).handlers.filter((h) => !h.builtin)).toHaveLength(0)
    }).pipe(Effect.provide(env())))

  it.effect("watchFd rejects a null interest or options and a bad fd with InvalidOptions, not a TypeError", () =>
    Effect.gen(function*() {
      const loop = yield* EventLoop.make()
      const test = yield* TestPlatform.TestPlatform
      const fd = yield* test.openFd
      const watch = (f: unknown, interest: unknown, options: unknown) =>
        Effect.flip(loop.watchFd(f as number, interest as { read: true }, options as { explanation: string; handle: () => Effect.Effect<void> }))
      for (const [f, interest, options, option] of [
        [fd, null, valid, "interest"],
        [fd, { read: "yes" }, valid, "interest.read"],
        [fd, { read: true }, null, "watchFd"],
        [-1, { read: true }, valid, "fd"]
      ] as const) {
        const error = yield* watch(f, interest, options)
        expect(error).toBeInstanceOf(InvalidOptions)
        expect((error as InvalidOptions).option).toContain(option)
      }
      // Nothing was left registered: a good watch of the fd goes through.
      yield* loop.watchFd(fd, { read: true }, valid)
    }).pipe(Effect.provide(env())))
})

describe("EventLoop options validation", () => {
  it.effect("make rejects bad options with InvalidOptions naming the option", () =>
    Effect.gen(function*() {
      const cases: Array<[unknown, string]> = [
        [{ quitTimeout: "-5 seconds" }, "quitTimeout"],
        [{ quitTimeout: null }, "quitTimeout"],
        [{ capacity: 0 }, "capacity"],
        [{ overflow: "block" }, "overflow"],
        [{ signals: ["SIGKILL"] }, "signals.0"],
        [{ unknownCommandWarnings: 1.5 }, "unknownCommandWarnings"]
      ]
      for (const [options, option] of cases) {
        const error = yield* Effect.flip(EventLoop.make(options as EventLoop.Options))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect((error as InvalidOptions).option).toBe(`EventLoop ${option}`)
      }
    }).pipe(Effect.provide(env())))
})

describe("EventLoop unknown command warnings", () => {
  it.effect("a flood of unknown bytes is counted in full and logged at most N per second, with a summary", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const loop = yield* EventLoop.make({ unknownCommandWarnings: 5 })
      for (let i = 0; i < 1000; i++) yield* loop.post(new Event.Command({ byte: 0x41, at: 0 }))
      yield* statsOf(loop, (s) => s.unknownCommands === 1000, "all unknown bytes counted")
      const single = () => logs.lines.filter((l) => l.includes("unknown command byte 0x41"))
      expect(single()).toHaveLength(5)
      yield* TestTime.advanceUntil(
        Effect.sync(() => logs.lines.some((l) => l.includes("995 more unknown command bytes"))),
        "1 second"
      )
      // A new second logs again.
      yield* loop.post(new Event.Command({ byte: 0x41, at: 0 }))
      yield* statsOf(loop, (s) => s.unknownCommands === 1001, "one more")
      expect(single()).toHaveLength(6)
      expect(logs.lines.filter((l) => l.startsWith("WARN")).length).toBe(7)
      expect((yield* Effect.flip(EventLoop.make({ unknownCommandWarnings: -1 })))).toBeInstanceOf(InvalidOptions)
    }).pipe(Effect.provide(env()), Effect.provide(logs.layer))
  })
})

describe("EventLoop stop bounds", () => {
  it.effect("closing the loop's scope ends within quitTimeout even with a stuck inline handler and a stuck tasklet", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const inlineStuck = yield* Deferred.make<void>()
      const taskletStuck = yield* Deferred.make<void>()
      const loops = yield* Deferred.make<EventLoop.EventLoop>()
      const release = yield* Deferred.make<void>()
      const closing = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
        const loop = yield* EventLoop.make({ quitTimeout: "2 seconds" })
        yield* loop.register({
          explanation: "stuck inline",
          match: { _tag: "Command", byte: "i" },
          handle: () => Effect.andThen(Deferred.succeed(inlineStuck, undefined), Effect.uninterruptible(Effect.never))
        })
        yield* loop.register({
          explanation: "stuck tasklet",
          match: { _tag: "Command", byte: "t" },
          handle: () => Effect.andThen(Deferred.succeed(taskletStuck, undefined), Effect.never),
          run: "Normal"
        })
        yield* loop.send("t")
        yield* Deferred.await(taskletStuck)
        yield* loop.send("i")
        yield* Deferred.await(inlineStuck)
        yield* Deferred.succeed(loops, loop)
        yield* Deferred.await(release)
      })))
      const loop = yield* Deferred.await(loops)
      yield* Deferred.succeed(release, undefined)
      yield* TestTime.advanceUntil(Effect.sync(() => closing.pollUnsafe() !== undefined), "1 second", { maxSteps: 10 })
      expect(Exit.isSuccess(yield* Fiber.await(closing))).toBe(true)
      const stopped = yield* loop.awaitStop
      expect(stopped).toMatchObject({ reason: "quit", cause: "scope closed" })
      expect(stopped.agenda.timedOut).toBe(true)
      expect(stopped.agenda.interrupted).toBe(1)
      expect(stopped.agenda.stats.total.balanced).toBe(true)
      expect(logs.lines.some((l) => l.startsWith("WARN") && l.includes(`inside inline handler "stuck inline"`))).toBe(true)
    }).pipe(Effect.provide(env()), Effect.provide(logs.layer))
  })
})

describe("EventLoop stop bounds without the agenda", () => {
  it.effect("a tasklet stuck uninterruptibly does not hold up the loop's stop: it reports the agenda's stats and goes", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      // The agenda lives in a scope of its own that the test never waits on.
      // It never abandons the tasklet (abandonAfter "infinity"), so its exit
      // never ends: what bounds the stop here is the loop's own bound alone.
      const agendaScope = yield* Scope.make()
      const agenda = yield* Agenda.make({ workers: 2, abandonAfter: "infinity" }).pipe(Scope.provide(agendaScope))
      const stuck = yield* Deferred.make<void>()
      const loops = yield* Deferred.make<EventLoop.EventLoop>()
      const closing = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
        const loop = yield* EventLoop.make({ quitTimeout: "2 seconds" })
        yield* Agenda.submit(Effect.andThen(Deferred.succeed(stuck, undefined), Effect.uninterruptible(Effect.never)))
        yield* Deferred.await(stuck)
        yield* Deferred.succeed(loops, loop)
      })).pipe(Effect.provideService(Agenda.Agenda, agenda)))
      const loop = yield* Deferred.await(loops)
      yield* TestTime.advanceUntil(Effect.sync(() => closing.pollUnsafe() !== undefined), "1 second", { maxSteps: 10 })
      expect(Exit.isSuccess(yield* Fiber.await(closing))).toBe(true)
      const stopped = yield* loop.awaitStop
      expect(stopped.agenda).toMatchObject({ mode: "exit", timedOut: true })
      expect(stopped.agenda.stats.total.running).toBe(1)
      expect(logs.lines.some((l) => l.startsWith("WARN") && l.includes("the loop stops without it"))).toBe(true)
    }).pipe(Effect.provide(TestPlatform.layer()), Effect.provide(logs.layer))
  })
})

describe("EventLoop failure", () => {
  it.effect("a defect the loop cannot isolate stops it visibly: state failed, logged, awaitStop dies with LoopFailed", () => {
    // A logger that throws on every line breaks the loop's own failure
    // reporting, the last thing dispatch can isolate.
    const logs = captureLogs({ throwOn: () => true })
    return Effect.gen(function*() {
      const loop = yield* EventLoop.make()
      yield* loop.send(0x41)
      const exit = yield* Effect.exit(loop.awaitStop)
      const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      expect(reason !== undefined && Cause.isDieReason(reason) && reason.defect).toBeInstanceOf(LoopFailed)
      expect((yield* loop.stats).state).toBe("failed")
      expect(logs.lines.some((l) => l.startsWith("ERROR") && l.includes("event loop failed"))).toBe(true)
      expect(yield* Effect.flip(loop.post(new Event.Command({ byte: 1, at: 0 })))).toMatchObject({ _tag: "LoopStopped" })
    }).pipe(Effect.provide(env()), Effect.provide(logs.layer))
  })
})
