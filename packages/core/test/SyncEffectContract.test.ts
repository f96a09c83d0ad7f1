import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { AgendaHarness } from "@refpersys/testkit"
import { Cause, Deferred, Effect, Exit } from "effect"
import * as Agenda from "../src/Agenda.js"
import * as Tasklet from "../src/Tasklet.js"
import {
  effect4Thunk,
  introspectionEnabled,
  introspectionProbePassed,
  probe,
  runSync,
  setIntrospection
} from "../src/internal/syncEffect.js"
import { withFiberSteps } from "./fiberSteps.js"

// The agenda takes `Effect.sync` tasklets inline by reading the `Sync`
// primitive's fields (Effect 4's layout), guarded by a probe at start-up.
// These tests pin down that contract with the installed Effect, and that the
// public path gives the same outcomes when the introspection is off.

/** Runs `body` with the introspection of `Effect.sync` switched as asked. */
const withIntrospection = <A, E, R>(enabled: boolean, body: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => setIntrospection(enabled)),
    () => body,
    (previous) => Effect.sync(() => setIntrospection(previous))
  )

/** An outcome reduced to what must not depend on the path taken. */
const summary = (handle: Tasklet.TaskletHandle<unknown, unknown>, exit: Exit.Exit<unknown, unknown>) =>
  Exit.match(exit, {
    onSuccess: (value) => ({ outcome: handle.outcome, value }),
    onFailure: (cause) => ({
      outcome: handle.outcome,
      failure: Cause.hasInterruptsOnly(cause) ? "interrupt" : Cause.hasDies(cause) ? "die" : "fail",
      squashed: Cause.hasInterruptsOnly(cause) ? undefined : Cause.squash(cause)
    })
  })

/** Submits one tasklet of each kind (plus two interrupted while queued) and reports their outcomes and stats. */
const outcomes = Effect.gen(function*() {
  const h = yield* AgendaHarness.make({ workers: 2, logFailures: false })
  const boom = new Error("boom")
  const effects: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
    Effect.sync(() => 21 * 2),
    Tasklet.sync(() => "tasklet"),
    Effect.sync(() => undefined),
    Effect.succeed("exit"),
    Effect.fail("no"),
    Effect.die("bug"),
    Effect.sync(() => {
      throw boom
    }),
    Tasklet.sync(() => {
      throw boom
    }),
    Effect.interrupt
  ]
  const handles: Array<Tasklet.TaskletHandle<unknown, unknown>> = []
  for (const effect of effects) {
    const handle = yield* h.agenda.submit(effect)
    handles.push(handle)
    yield* handle.await
  }
  const hold = yield* h.holdWorkers
  const queued = [
    yield* h.agenda.submit(Effect.sync(() => "never")),
    yield* h.agenda.submit(Tasklet.sync(() => "never"))
  ]
  for (const handle of queued) yield* handle.interrupt
  handles.push(...queued)
  yield* hold.release
  yield* h.agenda.whenIdle
  const results = []
  for (const handle of handles) results.push(summary(handle, yield* handle.await))
  const stats = yield* h.agenda.stats
  return { results, total: stats.total }
}).pipe(Effect.scoped)

describe("the Effect.sync introspection contract", () => {
  it("the start-up probe recognises Effect.sync on the installed effect", () => {
    expect(
      introspectionProbePassed,
      "the probe of Effect.sync's internal layout failed on the installed `effect`: the agenda and the event loop " +
        "have lost their fast path for Effect.sync tasklets and handlers (results stay right, throughput drops). " +
        "Update `effect4Thunk` in packages/core/src/internal/syncEffect.ts to the new layout of the Sync primitive, " +
        "or rely on Tasklet.sync, which does not depend on it."
    ).toBe(true)
    expect(introspectionEnabled()).toBe(true)
    expect(runSync(Effect.sync(() => 7))).toEqual(Exit.succeed(7))
  })

  it("the probe rejects a reader that recognises nothing, everything, or returns the wrong thunk", () => {
    expect(probe(effect4Thunk)).toBe(true)
    // A reader that recognises nothing (as Effect 3's field names would on Effect 4).
    expect(probe(() => undefined)).toBe(false)
    // A reader too loose to tell Effect.sync from other effects.
    expect(probe(() => () => undefined)).toBe(false)
    // A reader that throws.
    expect(probe(() => {
      throw new Error("layout changed")
    })).toBe(false)
  })

  it("with the introspection on, only synchronous effects are taken inline", () => {
    expect(runSync(Effect.promise(() => Promise.resolve(1)))).toBeUndefined()
    expect(runSync(Effect.suspend(() => Effect.succeed(1)))).toBeUndefined()
    expect(runSync(Effect.map(Effect.sync(() => 1), (n) => n + 1))).toBeUndefined()
    expect(runSync(Effect.succeed(1))).toEqual(Exit.succeed(1))
  })

  it("with the introspection off, Effect.sync goes to the fiber; Exit and Tasklet.sync stay inline", () => {
    const previous = setIntrospection(false)
    try {
      expect(introspectionEnabled()).toBe(false)
      expect(runSync(Effect.sync(() => 7))).toBeUndefined()
      expect(runSync(Effect.succeed(7))).toEqual(Exit.succeed(7))
      expect(runSync(Tasklet.sync(() => 7))).toEqual(Exit.succeed(7))
      const died = runSync(Tasklet.sync(() => {
        throw new Error("thrown")
      }))
      expect(died !== undefined && Exit.isFailure(died) && Cause.hasDies(died.cause)).toBe(true)
    } finally {
      setIntrospection(previous)
    }
    expect(introspectionEnabled()).toBe(true)
  })

  it.effect("the agenda gives the same outcomes with the introspection off as on", () =>
    Effect.gen(function*() {
      const on = yield* withIntrospection(true, outcomes)
      const off = yield* withIntrospection(false, outcomes)
      expect(off).toEqual(on)
      expect(on.results.map((r) => r.outcome)).toEqual([
        "Completed",
        "Completed",
        "Completed",
        "Completed",
        "Failed",
        "Failed",
        "Failed",
        "Failed",
        "Interrupted",
        "Interrupted",
        "Interrupted"
      ])
      expect(on.results.slice(0, 4).map((r) => "value" in r && r.value)).toEqual([42, "tasklet", undefined, "exit"])
      expect(on.results.slice(4, 8).map((r) => "failure" in r && r.failure)).toEqual(["fail", "die", "die", "die"])
      expect(on.results[6]).toMatchObject({ squashed: new Error("boom") })
      // Completed counts the two tasklets that held the workers.
      expect(on.total).toMatchObject({ completed: 6, failed: 4, interrupted: 3 })
      expect(on.total.balanced).toBe(true)
    }))

  it.effect("the worker's fiber steps over Effect.sync only with the introspection off", () =>
    Effect.gen(function*() {
      const ranOnFiber = (enabled: boolean) =>
        withFiberSteps((stepped) =>
          withIntrospection(
            enabled,
            Effect.gen(function*() {
              const agenda = yield* Agenda.make({ workers: 1 })
              const effects = [Effect.sync(() => 1), Tasklet.sync(() => 2), Effect.promise(() => Promise.resolve(3))]
              const values = []
              for (const effect of effects) values.push(yield* (yield* agenda.submit(effect)).join)
              expect(values).toEqual([1, 2, 3])
              return effects.map(stepped)
            }).pipe(Effect.scoped)
          )
        )
      expect(yield* ranOnFiber(true)).toEqual([false, false, true])
      expect(yield* ranOnFiber(false)).toEqual([true, false, true])
    }))

  it.effect("a running tasklet is interrupted and the next one runs with the introspection off", () =>
    withIntrospection(
      false,
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 1 })
        const started = yield* Deferred.make<void>()
        const handle = yield* agenda.submit(Effect.andThen(Deferred.succeed(started, undefined), Effect.never))
        const after = yield* agenda.submit(Effect.sync(() => "after"))
        yield* Deferred.await(started)
        const exit = yield* handle.interrupt
        expect(Exit.hasInterrupts(exit)).toBe(true)
        expect(handle.outcome).toBe("Interrupted")
        expect(yield* after.join).toBe("after")
        const stats = yield* agenda.stats
        expect(stats.total).toMatchObject({ completed: 1, interrupted: 1 })
        expect(stats.total.balanced).toBe(true)
      })
    ))
})
