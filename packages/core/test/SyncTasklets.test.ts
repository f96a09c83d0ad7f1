import { describe, expect, it } from "@effect/vitest"
import { AgendaHarness } from "@refpersys/testkit"
import { Cause, Effect, Exit } from "effect"
import * as Agenda from "../src/Agenda.js"

// Synchronous tasklets (`Effect.sync` and plain `Exit`s) are run by the worker
// without a fiber step; these pin down that they behave as any other tasklet.
describe("synchronous tasklets", () => {
  it.scoped("settle with the outcome a fiber would give them", () =>
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
      expect(Exit.isFailure(diedExit) && Cause.isDie(diedExit.cause)).toBe(true)
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

  it.scoped("keep FIFO order within a level across thousands of queued tasklets", () =>
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
      const seen = yield* Effect.async<number>((resume) => {
        setImmediate(() => resume(Effect.succeed(done)))
      })
      yield* agenda.whenIdle
      expect(seen).toBeLessThan(n)
      expect(done).toBe(n)
    }).pipe(Effect.scoped))
})
