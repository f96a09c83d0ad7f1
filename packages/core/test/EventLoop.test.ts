import { describe, it } from "@effect/vitest"
import { TestPlatform, TestTime } from "@refpersys/testkit"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, Schema } from "effect"
import { expect } from "vitest"
import * as Agenda from "../src/Agenda.js"
import { InvalidOptions } from "../src/AgendaError.js"
import * as Event from "../src/Event.js"
import * as EventLoop from "../src/EventLoop.js"
import { HandlerConflict, LoopStopped, TooManyHandlers } from "../src/EventLoopError.js"
import * as SyncEffect from "../src/internal/syncEffect.js"

const eventually = TestTime.eventually

const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    lines.push(`${logLevel.toUpperCase()} ${parts.map((p) => typeof p === "string" ? p : JSON.stringify(p)).join(" ")}`)
  })
  return { lines, layer: Logger.layer([logger]) }
}

/** Platform + agenda for a loop under test; the agenda stays visible to the test. */
const env = (agenda: Agenda.Options = {}) => Layer.merge(TestPlatform.layer(), Agenda.layer({ workers: 2, ...agenda }))

const statsOf = (loop: EventLoop.EventLoop, pick: (s: EventLoop.LoopStats) => boolean, what: string) =>
  eventually(Effect.map(loop.stats, pick), what)

describe("EventLoop", () => {
  describe("commands", () => {
    it.effect("D dumps, G runs a GC barrier, Q quits: in order", () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        yield* loop.send("D")
        yield* loop.send("G")
        yield* eventually(Effect.map(Agenda.stats, (s) => s.gcCycles === 1), "GC barrier ran")
        yield* loop.send("Q")
        const stopped = yield* loop.awaitStop
        expect(stopped.reason).toBe("quit")
        expect(stopped.cause).toBe("command Q")
        expect(stopped.loop.events.Command).toBe(3)
        expect(stopped.agenda.mode).toBe("quit")
        const dumpIndex = logs.lines.findIndex((l) => l.includes("dump (command D)"))
        const gcIndex = logs.lines.findIndex((l) => l.includes("GC barrier (command G) done"))
        expect(dumpIndex).toBeGreaterThanOrEqual(0)
        expect(gcIndex).toBeGreaterThan(dumpIndex)
      }).pipe(Effect.provide(env()), Effect.provide(logs.layer))
    })

    it.effect("X exits at once: running tasklets are interrupted, queued ones dropped", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const started = yield* Deferred.make<void>()
        yield* Agenda.submit(Effect.andThen(Deferred.succeed(started, undefined), Effect.never), { label: "forever" })
        yield* Agenda.submit(Effect.andThen(Deferred.await(started), Effect.never), { label: "forever too" })
        for (let i = 0; i < 3; i++) yield* Agenda.submit(Effect.void, { priority: "Low" })
        yield* Deferred.await(started)
        yield* loop.send("X")
        const stopped = yield* loop.awaitStop
        expect(stopped.reason).toBe("exit")
        expect(stopped.agenda.interrupted).toBe(2)
        expect(stopped.agenda.dropped).toBe(3)
        expect(stopped.agenda.stats.total.balanced).toBe(true)
      }).pipe(Effect.provide(env())))

    it.effect("an unknown byte is logged with its value, counted, and the loop goes on", () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        yield* loop.send(0x41)
        yield* loop.send(0)
        yield* statsOf(loop, (s) => s.unknownCommands === 2, "2 unknown commands")
        expect(logs.lines.some((l) => l.startsWith("WARN") && l.includes("0x41 'A'"))).toBe(true)
        expect(logs.lines.some((l) => l.includes("unknown command byte 0x00"))).toBe(true)
        const stats = yield* loop.stats
        expect(stats.state).toBe("running")
        expect(stats.unhandled.Command).toBe(2)
        // Still serving commands.
        yield* loop.send("Q")
        expect((yield* loop.awaitStop).reason).toBe("quit")
      }).pipe(Effect.provide(env()), Effect.provide(logs.layer))
    })

    it.effect("user bindings handle other bytes; bytes from one sender keep their order", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const seen: Array<number> = []
        yield* loop.register({
          explanation: "record every command",
          match: { _tag: "Command" },
          handle: (e) => Effect.sync(() => void seen.push(e.byte))
        })
        const bytes = Array.from({ length: 200 }, (_, i) => (i * 7) % 256).filter((b) => ![68, 71, 81, 88].includes(b))
        for (const b of bytes) yield* loop.send(b)
        yield* statsOf(loop, (s) => s.events.Command === bytes.length, "all commands")
        expect(seen).toEqual(bytes)
        const stats = yield* loop.stats
        expect(stats.unknownCommands).toBe(0)
      }).pipe(Effect.provide(env())))

    it.effect("send rejects what is not a byte", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        expect(yield* Effect.flip(loop.send(256))).toBeInstanceOf(InvalidOptions)
        expect(yield* Effect.flip(loop.send("QQ"))).toBeInstanceOf(InvalidOptions)
      }).pipe(Effect.provide(env())))
  })

  describe("signals", () => {
    it.effect("SIGUSR1 dumps; SIGTERM quits", () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const test = yield* TestPlatform.TestPlatform
        yield* test.signal("SIGUSR1")
        yield* eventually(Effect.sync(() => logs.lines.some((l) => l.includes("dump (SIGUSR1)"))), "dump logged")
        yield* test.signal("SIGTERM")
        const stopped = yield* loop.awaitStop
        expect(stopped).toMatchObject({ reason: "quit", cause: "SIGTERM" })
        expect(stopped.loop.signals).toEqual({ SIGUSR1: 1, SIGTERM: 1 })
      }).pipe(Effect.provide(env()), Effect.provide(logs.layer))
    })

    it.effect("SIGINT quits; a second SIGINT while quitting exits", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const test = yield* TestPlatform.TestPlatform
        const started = yield* Deferred.make<void>()
        yield* Agenda.submit(Effect.andThen(Deferred.succeed(started, undefined), Effect.never), { label: "stuck" })
        yield* Deferred.await(started)
        yield* test.signal("SIGINT")
        yield* statsOf(loop, (s) => s.state === "quitting", "quitting")
        yield* test.signal("SIGINT")
        const stopped = yield* loop.awaitStop
        expect(stopped).toMatchObject({ reason: "exit", cause: "second SIGINT" })
        expect(stopped.agenda.interrupted).toBe(1)
      }).pipe(Effect.provide(env())))

    it.effect("other signals reach user handlers; unhandled ones are counted", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make({ signals: ["SIGINT", "SIGTERM", "SIGUSR2", "SIGHUP", "SIGRTMIN+1"] })
        const test = yield* TestPlatform.TestPlatform
        const got: Array<string> = []
        yield* loop.register({
          explanation: "reload on SIGHUP",
          match: { _tag: "Signal", signal: "SIGHUP" },
          handle: (e) => Effect.sync(() => void got.push(e.signal))
        })
        yield* loop.register({
          explanation: "count real-time signals",
          match: { _tag: "Signal", signal: "SIGRTMIN+1" },
          handle: (e) => Effect.sync(() => void got.push(e.signal))
        })
        yield* test.signal("SIGHUP")
        yield* test.signal("SIGRTMIN+1")
        yield* test.signal("SIGUSR2")
        yield* statsOf(loop, (s) => s.events.Signal === 3, "3 signals")
        expect(got).toEqual(["SIGHUP", "SIGRTMIN+1"])
        expect((yield* loop.stats).unhandled.Signal).toBe(1)
      }).pipe(Effect.provide(env())))

    it.effect("child exits arrive as ChildExit events", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const test = yield* TestPlatform.TestPlatform
        const exits = yield* Deferred.make<Event.ChildExit>()
        yield* loop.register({
          explanation: "reap worker 42",
          match: { _tag: "ChildExit", pid: 42 },
          handle: (e) => Deferred.succeed(exits, e)
        })
        yield* test.childExit(42, 3)
        const e = yield* Deferred.await(exits)
        expect(e).toMatchObject({ pid: 42, code: 3, signal: null })
      }).pipe(Effect.provide(env())))
  })

  describe("handlers", () => {
    it.effect("synchronous inline handlers of one batch run as plain calls, without fiber steps of their own", () =>
      Effect.gen(function*() {
        // The loop fiber's op count, read by each handler: on the fast path a
        // batch of Effect.sync handlers is one synchronous stretch of the loop
        // fiber, so the count does not move between them; on the fiber path
        // (introspection switched off) every handler adds its own steps.
        const opCounts = (batch: number) =>
          Effect.gen(function*() {
            const loop = yield* EventLoop.make()
            const seen: Array<number> = []
            const done = yield* Deferred.make<void>()
            yield* loop.register({
              explanation: "count the loop fiber's steps",
              match: { _tag: "Command", byte: 7 },
              handle: () =>
                Effect.sync(() => {
                  seen.push(Fiber.getCurrent()?.currentOpCount ?? -1)
                  if (seen.length === batch) Deferred.doneUnsafe(done, Exit.void)
                })
            })
            // Posted while the loop waits: they make one batch.
            for (let i = 0; i < batch; i++) yield* loop.post(new Event.Command({ byte: 7, at: 0 }))
            yield* Deferred.await(done)
            expect((yield* loop.stats).iterations).toBe(1)
            return seen
          }).pipe(Effect.scoped, Effect.provide(env()))
        expect(SyncEffect.introspectionEnabled()).toBe(true)
        const fast = yield* opCounts(10)
        expect(new Set(fast).size).toBe(1)
        const previous = SyncEffect.setIntrospection(false)
        const slow = yield* opCounts(10).pipe(Effect.ensuring(Effect.sync(() => SyncEffect.setIntrospection(previous))))
        expect(new Set(slow).size).toBe(10)
      }))

    it.effect("the 129th handler fails with TooManyHandlers; default bindings do not count", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        for (let i = 0; i < 128; i++) {
          yield* loop.register({ explanation: `handler ${i}`, match: { _tag: "TimerFired" }, handle: () => Effect.void })
        }
        const error = yield* Effect.flip(
          loop.register({ explanation: "one too many", match: { _tag: "Signal" }, handle: () => Effect.void })
        )
        expect(error).toBeInstanceOf(TooManyHandlers)
        expect(error.message).toContain("already has 128 handlers")
        const dump = yield* loop.dump
        expect(dump.handlers.filter((h) => !h.builtin)).toHaveLength(128)
        expect(dump.handlers.filter((h) => h.builtin).length).toBeGreaterThan(0)
      }).pipe(Effect.provide(env())))

    it.effect("closing a registration's scope unregisters it", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make({ maxHandlers: 1 })
        yield* Effect.scoped(
          loop.register({ explanation: "short-lived", match: { _tag: "Command", byte: "z" }, handle: () => Effect.void })
        )
        const info = yield* loop.register({
          explanation: "takes the freed slot",
          match: { _tag: "Command", byte: "z" },
          handle: () => Effect.void
        })
        expect(info).toMatchObject({ explanation: "takes the freed slot", match: "Command 0x7a 'z'", builtin: false })
      }).pipe(Effect.provide(env())))

    it.effect("a failing or defecting handler is logged with its explanation and isolated", () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const after = yield* Deferred.make<void>()
        yield* loop.register({ explanation: "fails", match: { _tag: "Command", byte: "a" }, handle: () => Effect.fail("nope") })
        yield* loop.register({
          explanation: "throws",
          match: { _tag: "Command", byte: "b" },
          handle: () => Effect.sync(() => { throw new Error("bug") })
        })
        yield* loop.register({ explanation: "fine", match: { _tag: "Command", byte: "c" }, handle: () => Deferred.succeed(after, undefined) })
        yield* loop.send("a")
        yield* loop.send("b")
        yield* loop.send("c")
        yield* Deferred.await(after)
        const stats = yield* loop.stats
        expect(stats.handlerFailures).toBe(2)
        expect(stats.state).toBe("running")
        expect(logs.lines.some((l) => l.includes(`handler "fails" failed on a Command event`))).toBe(true)
        expect(logs.lines.some((l) => l.includes(`handler "throws" failed`))).toBe(true)
        const dump = yield* loop.dump
        expect(dump.handlers.find((h) => h.explanation === "fails")).toMatchObject({ calls: 1, failures: 1 })
      }).pipe(Effect.provide(env()), Effect.provide(logs.layer))
    })

    it.effect("a handler can submit tasklets to the agenda at a priority", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const ran = yield* Deferred.make<string>()
        yield* loop.register({
          explanation: "heavy work off the loop",
          match: { _tag: "Command", byte: "w" },
          handle: () => Deferred.succeed(ran, "done"),
          run: "Low"
        })
        yield* loop.send("w")
        expect(yield* Deferred.await(ran)).toBe("done")
        yield* Agenda.whenIdle
        const stats = yield* Agenda.stats
        expect(stats.byPriority.Low.completed).toBe(1)
      }).pipe(Effect.provide(env())))

    it.effect("rejects bad registrations with typed errors", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const bad: Array<EventLoop.HandlerOptions<EventLoop.Match, never>> = [
          { explanation: "", match: { _tag: "Command" as const }, handle: () => Effect.void },
          { explanation: "x", match: { _tag: "Command" as const, byte: 300 }, handle: () => Effect.void },
          { explanation: "x", match: { _tag: "Signal" as const, signal: "SIGKILL" }, handle: () => Effect.void },
          { explanation: "x", match: { _tag: "Nope" } as never, handle: () => Effect.void },
          { explanation: "x", match: { _tag: "Command" as const }, handle: () => Effect.void, run: "Urgent" as never }
        ]
        for (const options of bad) expect(yield* Effect.flip(loop.register(options))).toBeInstanceOf(InvalidOptions)
        yield* Effect.flip(EventLoop.make({ capacity: 0 })).pipe(Effect.map((e) => expect(e).toBeInstanceOf(InvalidOptions)))
      }).pipe(Effect.provide(env())))

    it.effect("registering after the loop stopped fails with LoopStopped", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        yield* loop.quit
        yield* loop.awaitStop
        const error = yield* Effect.flip(
          loop.register({ explanation: "late", match: { _tag: "Command" }, handle: () => Effect.void })
        )
        expect(error).toBeInstanceOf(LoopStopped)
        expect(yield* Effect.flip(loop.post(new Event.Command({ byte: 1, at: 0 })))).toBeInstanceOf(LoopStopped)
      }).pipe(Effect.provide(env())))
  })

  describe("fds", () => {
    it.effect("watchFd delivers readiness, ends at hang-up, and allows one handler per fd", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const test = yield* TestPlatform.TestPlatform
        const seen: Array<Event.FdReady> = []
        yield* loop.watchFd(7, { read: true }, {
          explanation: "read the control pipe",
          handle: (e) => Effect.sync(() => void seen.push(e))
        })
        const conflict = yield* Effect.flip(
          loop.register({ explanation: "second reader", match: { _tag: "FdReady", fd: 7 }, handle: () => Effect.void })
        )
        expect(conflict).toBeInstanceOf(HandlerConflict)
        expect(conflict.message).toContain(`already handled by "read the control pipe"`)
        yield* test.ready(7, { read: true, write: false, hup: false, error: false })
        yield* test.hangup(7)
        yield* statsOf(loop, (s) => s.events.FdReady === 2, "2 fd events")
        expect(seen.map((e) => [e.read, e.hup])).toEqual([[true, false], [false, true]])
      }).pipe(Effect.provide(env())))
  })

  describe("queue", () => {
    it.effect("overflow is counted (dropNewest) and the loop goes on", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make({ capacity: 2, overflow: "dropNewest", batchSize: 1 })
        const gate = yield* Deferred.make<void>()
        const blocked = yield* Deferred.make<void>()
        yield* loop.register({
          explanation: "blocks the loop",
          match: { _tag: "Command", byte: "b" },
          handle: () => Effect.andThen(Deferred.succeed(blocked, undefined), Deferred.await(gate))
        })
        yield* loop.send("b")
        yield* Deferred.await(blocked)
        for (let i = 0; i < 5; i++) yield* loop.post(new Event.Command({ byte: 1, at: 0 }))
        const stats = yield* loop.stats
        expect(stats.overflow).toBe(3)
        expect(stats.queued).toBe(2)
        yield* Deferred.succeed(gate, undefined)
        yield* statsOf(loop, (s) => s.unknownCommands === 2, "queued events dispatched")
      }).pipe(Effect.provide(env())))

    it.effect("dropOldest keeps the newest events; backpressure makes posters wait", () =>
      Effect.gen(function*() {
        const oldest = yield* EventLoop.make({ capacity: 1, overflow: "dropOldest", batchSize: 1 })
        const gate = yield* Deferred.make<void>()
        const blocked = yield* Deferred.make<void>()
        const seen: Array<number> = []
        yield* oldest.register({
          explanation: "record",
          match: { _tag: "Command" },
          handle: (e) =>
            e.byte === 98
              ? Effect.andThen(Deferred.succeed(blocked, undefined), Deferred.await(gate))
              : Effect.sync(() => void seen.push(e.byte))
        })
        yield* oldest.send("b")
        yield* Deferred.await(blocked)
        yield* oldest.post(new Event.Command({ byte: 1, at: 0 }))
        yield* oldest.post(new Event.Command({ byte: 2, at: 0 }))
        expect((yield* oldest.stats).overflow).toBe(1)
        yield* Deferred.succeed(gate, undefined)
        yield* statsOf(oldest, (s) => s.events.Command === 2, "dispatched")
        expect(seen).toEqual([2])
      }).pipe(Effect.provide(env())))

    it.effect("under backpressure a poster waits for room and nothing is dropped", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make({ capacity: 1, batchSize: 1 })
        const gate = yield* Deferred.make<void>()
        const blocked = yield* Deferred.make<void>()
        yield* loop.register({
          explanation: "blocks once",
          match: { _tag: "Command", byte: "b" },
          handle: () => Effect.andThen(Deferred.succeed(blocked, undefined), Deferred.await(gate))
        })
        yield* loop.send("b")
        yield* Deferred.await(blocked)
        yield* loop.post(new Event.Command({ byte: 1, at: 0 }))
        const waiting = yield* Effect.forkChild(loop.post(new Event.Command({ byte: 2, at: 0 })))
        yield* statsOf(loop, (s) => s.backpressureWaits === 1, "poster waits")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(waiting)
        yield* statsOf(loop, (s) => s.unknownCommands === 2, "both dispatched")
        expect((yield* loop.stats).overflow).toBe(0)
      }).pipe(Effect.provide(env())))
  })

  describe("timeouts", () => {
    it.effect("timeouts fire through the loop as TimerFired events, with TestClock", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const fired: Array<string> = []
        const observed: Array<number> = []
        const handle = yield* loop.timeouts.after("2 seconds", Effect.sync(() => void fired.push("later")), { label: "later" })
        yield* loop.timeouts.after("1 second", Effect.sync(() => void fired.push("sooner")), { label: "sooner" })
        yield* loop.register({
          explanation: "observe timer firings",
          match: { _tag: "TimerFired" },
          handle: (e) => Effect.sync(() => void observed.push(e.id))
        })
        yield* TestTime.adjustWhenSleeping("3 seconds")
        yield* statsOf(loop, (s) => s.events.TimerFired === 2, "2 firings")
        expect(fired).toEqual(["sooner", "later"])
        expect(observed).toHaveLength(2)
        expect(observed[1]).toBe(handle.id)
      }).pipe(Effect.provide(env())))
  })

  describe("dump and stop", () => {
    it.effect("the dump is a Schema-encodable snapshot of loop, handlers, timeouts and agenda", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        yield* loop.timeouts.after("1 minute", Effect.void, { label: "housekeeping" })
        yield* loop.register({ explanation: "custom", match: { _tag: "Signal", signal: "SIGHUP" }, handle: () => Effect.void })
        const dump = yield* loop.dump
        const json = JSON.parse(JSON.stringify(Schema.encodeSync(EventLoop.Dump)(dump)))
        const back = Schema.decodeUnknownSync(EventLoop.Dump)(json)
        expect(back.platform.name).toBe("test")
        expect(back.handlers.map((h) => h.explanation)).toContain("custom")
        expect(back.handlers.find((h) => h.explanation === "custom")?.match).toBe("Signal SIGHUP")
        expect(back.timeouts.map((t) => t.label)).toEqual(["housekeeping"])
        expect(back.agenda.workers).toHaveLength(2)
        expect(back.loop.state).toBe("running")
      }).pipe(Effect.provide(env())))

    it.effect("quit drains the agenda with nothing lost", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const handles = []
        for (let i = 0; i < 50; i++) {
          handles.push(yield* Agenda.submit(Effect.yieldNow, { priority: (["High", "Normal", "Low"] as const)[i % 3] }))
        }
        yield* loop.quit
        const stopped = yield* loop.awaitStop
        expect(stopped.reason).toBe("quit")
        expect(stopped.agenda.stats.total).toMatchObject({ submitted: 50, completed: 50, dropped: 0 })
        expect(stopped.agenda.stats.total.balanced).toBe(true)
        expect(handles.every((h) => h.outcome === "Completed")).toBe(true)
        expect(stopped.loop.state).toBe("stopped")
      }).pipe(Effect.provide(env())))
  })

  describe("integration", () => {
    it.effect("signals and commands submit tasklets at three priorities; Q ends the run and the stats add up", () =>
      Effect.gen(function*() {
        const loop = yield* EventLoop.make({ signals: ["SIGINT", "SIGTERM", "SIGUSR2", "SIGHUP"] })
        const test = yield* TestPlatform.TestPlatform
        const ran: Record<string, number> = { High: 0, Normal: 0, Low: 0 }
        const work = (priority: "High" | "Normal" | "Low") =>
          Effect.gen(function*() {
            yield* Effect.yieldNow
            ran[priority]++
          })
        yield* loop.register({
          explanation: "SIGUSR2: urgent work",
          match: { _tag: "Signal", signal: "SIGUSR2" },
          handle: () => work("High"),
          run: "High"
        })
        yield* loop.register({
          explanation: "SIGHUP: routine work",
          match: { _tag: "Signal", signal: "SIGHUP" },
          handle: () => work("Normal"),
          run: "Normal"
        })
        yield* loop.register({
          explanation: "command b: background work",
          match: { _tag: "Command", byte: "b" },
          handle: () => work("Low"),
          run: "Low"
        })
        for (let i = 0; i < 30; i++) {
          yield* test.signal("SIGUSR2")
          yield* test.signal("SIGHUP")
          yield* loop.send("b")
          yield* loop.send("b")
        }
        // Signals and commands come from different sources; wait for the signals so
        // every submission happens before Q (commands keep their own order).
        yield* statsOf(loop, (s) => s.events.Signal === 60, "all signals dispatched")
        yield* loop.send("Q")
        const stopped = yield* loop.awaitStop
        expect(stopped).toMatchObject({ reason: "quit", cause: "command Q" })
        const total = stopped.agenda.stats.total
        expect(total.balanced).toBe(true)
        expect(stopped.agenda.stats.byPriority.High.completed).toBe(30)
        expect(stopped.agenda.stats.byPriority.Normal.completed).toBe(30)
        expect(stopped.agenda.stats.byPriority.Low.completed).toBe(60)
        expect(total).toMatchObject({ submitted: 120, completed: 120, failed: 0, dropped: 0, interrupted: 0 })
        expect(ran).toEqual({ High: 30, Normal: 30, Low: 60 })
        expect(stopped.loop.signals).toEqual({ SIGUSR2: 30, SIGHUP: 30 })
        expect(stopped.loop.events.Command).toBe(61)
        expect(stopped.loop.handlerFailures).toBe(0)
      }).pipe(Effect.provide(env())))
  })
})

describe("EventLoop scope", () => {
  it.effect("closing the loop's scope drains the agenda and publishes a quit", () =>
    Effect.gen(function*() {
      const { handles, loop } = yield* Effect.scoped(Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const handles = []
        for (let i = 0; i < 10; i++) handles.push(yield* Agenda.submit(Effect.yieldNow, { priority: "Low" }))
        return { handles, loop }
      }))
      expect(handles.every((h) => h.outcome === "Completed")).toBe(true)
      const stopped = yield* loop.awaitStop
      expect(stopped).toMatchObject({ reason: "quit", cause: "scope closed" })
      expect(stopped.agenda.stats.total.balanced).toBe(true)
    }).pipe(Effect.provide(env())))
})

describe("EventLoop.layer", () => {
  it.effect("provides the loop from a layer built on Platform and Agenda", () =>
    Effect.gen(function*() {
      const loop = yield* EventLoop.EventLoop
      yield* loop.send("Q")
      expect((yield* loop.awaitStop).cause).toBe("command Q")
    }).pipe(Effect.provide(EventLoop.layer().pipe(Layer.provideMerge(env())))))
})

describe("EventLoop fd watches under faults", () => {
  it.effect("a watchFd the platform refuses leaves no handler registered, so a retry meets no HandlerConflict", () =>
    Effect.gen(function*() {
      const loop = yield* EventLoop.make()
      const test = yield* TestPlatform.TestPlatform
      const fd = yield* test.openFd
      yield* test.markClosed(fd)
      const before = (yield* loop.dump).handlers.length
      const watch = (explanation: string) =>
        Effect.flip(loop.watchFd(fd, { read: true }, { explanation, handle: () => Effect.void }))
      expect(yield* watch("first try")).toMatchObject({ _tag: "PlatformError", reason: "BadFd" })
      expect((yield* loop.dump).handlers.length).toBe(before)
      expect(yield* watch("second try")).toMatchObject({ _tag: "PlatformError", reason: "BadFd" })
    }).pipe(Effect.provide(env())))

  it.effect("a watch passes on its next readiness report only once the handler is done with the last one", () =>
    Effect.gen(function*() {
      const loop = yield* EventLoop.make()
      const test = yield* TestPlatform.TestPlatform
      const fd = yield* test.openFd
      const gate = yield* Deferred.make<void>()
      let calls = 0
      yield* loop.watchFd(fd, { read: true }, {
        explanation: "a slow reader",
        run: "Normal",
        handle: () => Effect.andThen(Effect.sync(() => void calls++), Deferred.await(gate))
      })
      yield* test.ready(fd, { read: true })
      yield* test.ready(fd, { read: true })
      yield* eventually(Effect.sync(() => calls === 1), "the first report to reach its tasklet")
      // The loop is free (an event posted after the reports gets through), yet
      // the second report waits for the tasklet handling the first.
      yield* loop.post(new Event.Command({ byte: 0x2e, at: 0 }))
      yield* statsOf(loop, (s) => s.events.Command === 1, "the command")
      expect((yield* loop.stats).events.FdReady).toBe(1)
      expect(calls).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      yield* statsOf(loop, (s) => s.events.FdReady === 2, "the second report")
      yield* eventually(Effect.sync(() => calls === 2), "the second report to reach its tasklet")
    }).pipe(Effect.provide(env())))
})
