import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { AgendaHarness, TestPlatform } from "@refpersys/testkit"
import { Cause, Deferred, Effect, Exit, Layer, Logger } from "effect"
import * as Agenda from "../src/Agenda.js"
import * as EventLoop from "../src/EventLoop.js"
import { runSync, setIntrospection } from "../src/internal/syncEffect.js"
import * as Tasklet from "../src/Tasklet.js"
import { withFiberSteps } from "./fiberSteps.js"

// Synchronous tasklets (`Effect.sync` and plain `Exit`s) are run by the worker
// without a fiber step; these pin down that they behave as any other tasklet.
describe("synchronous tasklets", () => {
  it.effect("settle with the outcome a fiber would give them", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2, logFailures: false })
      const value = yield* agenda.submit(Effect.sync(() => 21 * 2))
      const plain = yield* agenda.submit(Effect.succeed("exit"))
      const failed = yield* agenda.submit(Effect.fail("no"))
      const died = yield* agenda.submit(Effect.die("bug"))
      const thrown = yield* agenda.submit(Effect.sync(() => {
        throw new Error("thrown")
      }))
      expect(yield* value.join).toBe(42)
      expect(yield* plain.join).toBe("exit")
      expect(yield* failed.await).toEqual(Exit.fail("no"))
      const diedExit = yield* died.await
      expect(Exit.isFailure(diedExit) && Cause.hasDies(diedExit.cause)).toBe(true)
      const thrownExit = yield* thrown.await
      expect(Exit.isFailure(thrownExit) && Cause.squash(thrownExit.cause)).toEqual(new Error("thrown"))
      expect([value, plain, failed, died, thrown].map((h) => h.outcome)).toEqual(
        ["Completed", "Completed", "Failed", "Failed", "Failed"]
      )
      const stats = yield* agenda.stats
      expect(stats.total.completed).toBe(2)
      expect(stats.total.failed).toBe(3)
      expect(stats.total.balanced).toBe(true)
    }))

  it.effect("keep FIFO order within a level across thousands of queued tasklets", () =>
    Effect.gen(function*() {
      const h = yield* AgendaHarness.make({ workers: 3, capacity: 5_000 })
      const hold = yield* h.holdWorkers
      const expected: Array<string> = []
      for (let i = 0; i < 3_000; i++) {
        expected.push(`L${i}`)
        yield* h.agenda.submit(h.record(`L${i}`), { priority: "Low" })
      }
      yield* hold.release
      yield* h.agenda.whenIdle
      expect(yield* h.log).toEqual(expected)
    }))

  it.live("a long run of them still lets a setImmediate callback run before it ends", () =>
    Effect.gen(function*() {
      const n = 100_000
      const agenda = yield* Agenda.make({ workers: 2, capacity: n })
      let done = 0
      const task = Effect.sync(() => {
        done++
      })
      for (let i = 0; i < n; i++) agenda.unsafeSubmit(task, { priority: "Low" })
      // The workers run in scheduler slices that end after a few ms; a
      // callback queued now runs at the end of the first slice.
      const seen = yield* Effect.callback<number>((resume) => {
        setImmediate(() => resume(Effect.succeed(done)))
      })
      yield* agenda.whenIdle
      expect(seen).toBeLessThan(n)
      expect(done).toBe(n)
    }).pipe(Effect.scoped))

  describe("Tasklet.sync", () => {
    it("is an ordinary Effect outside the agenda: runs, composes, and a throw is a defect", () => {
      let calls = 0
      const tick = Tasklet.sync(() => ++calls)
      expect(Effect.runSync(tick)).toBe(1)
      expect(Effect.runSync(Effect.map(tick, (n) => n * 10))).toBe(20)
      const thrown = Effect.runSyncExit(Tasklet.sync(() => {
        throw new Error("thrown")
      }))
      expect(Exit.isFailure(thrown) && Cause.hasDies(thrown.cause) && Cause.squash(thrown.cause)).toEqual(
        new Error("thrown")
      )
      // Composed, it is a regular effect: not taken inline.
      expect(runSync(Effect.map(tick, (n) => n))).toBeUndefined()
      expect(calls).toBe(2)
    })

    it.effect("is taken inline by the agenda even without the introspection of Effect.sync", () =>
      withFiberSteps((stepped) =>
        Effect.gen(function*() {
          yield* Effect.acquireRelease(
            Effect.sync(() => setIntrospection(false)),
            (previous) => Effect.sync(() => setIntrospection(previous))
          )
          const agenda = yield* Agenda.make({ workers: 2, logFailures: false })
          let done = 0
          const task = Tasklet.sync(() => ++done)
          const thrower = Tasklet.sync(() => {
            throw new Error("thrown")
          })
          const viaFiber = Effect.sync(() => "fiber")
          const handles = []
          for (let i = 0; i < 100; i++) handles.push(yield* agenda.submit(task, { priority: "Low" }))
          const thrown = yield* agenda.submit(thrower)
          const fibered = yield* agenda.submit(viaFiber)
          yield* agenda.whenIdle
          expect(done).toBe(100)
          expect(yield* handles[99]!.join).toBeGreaterThan(1)
          const thrownExit = yield* thrown.await
          expect(Exit.isFailure(thrownExit) && Cause.hasDies(thrownExit.cause)).toBe(true)
          expect(thrown.outcome).toBe("Failed")
          expect(yield* fibered.join).toBe("fiber")
          // No fiber stepped over the Tasklet.sync tasklets; the Effect.sync
          // one, with the introspection off, went to the worker's fiber.
          expect([stepped(task), stepped(thrower), stepped(viaFiber)]).toEqual([false, false, true])
          const stats = yield* agenda.stats
          expect(stats.total.completed).toBe(101)
          expect(stats.total.failed).toBe(1)
          expect(stats.total.balanced).toBe(true)
        })
      ))

    it.effect("runs as a loop's inline handler; a throw is a logged handler failure", () =>
      withFiberSteps((stepped) => Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        const seen: Array<string> = []
        const returned: Array<Effect.Effect<void>> = []
        const keep = (effect: Effect.Effect<void>) => {
          returned.push(effect)
          return effect
        }
        const after = yield* Deferred.make<void>()
        yield* loop.register({
          explanation: "records",
          match: { _tag: "Command", byte: "r" },
          handle: (event) =>
            keep(Tasklet.sync(() => {
              seen.push(event._tag)
            }))
        })
        yield* loop.register({
          explanation: "throws",
          match: { _tag: "Command", byte: "t" },
          handle: () =>
            keep(Tasklet.sync(() => {
              throw new Error("bug")
            }))
        })
        yield* loop.register({
          explanation: "done",
          match: { _tag: "Command", byte: "d" },
          handle: () => Deferred.succeed(after, undefined)
        })
        yield* loop.send("r")
        yield* loop.send("t")
        yield* loop.send("r")
        yield* loop.send("d")
        yield* Deferred.await(after)
        expect(seen).toEqual(["Command", "Command"])
        const dump = yield* loop.dump
        expect(dump.handlers.find((h) => h.explanation === "records")).toMatchObject({ calls: 2, failures: 0 })
        expect(dump.handlers.find((h) => h.explanation === "throws")).toMatchObject({ calls: 1, failures: 1 })
        expect((yield* loop.stats).handlerFailures).toBe(1)
        // Run inline: no fiber stepped over the handlers' effects.
        expect(returned.length).toBe(3)
        expect(returned.some(stepped)).toBe(false)
      })).pipe(
        Effect.provide(Layer.merge(TestPlatform.layer(), Agenda.layer({ workers: 2 }))),
        Effect.provide(Logger.layer([]))
      ))
  })
})
