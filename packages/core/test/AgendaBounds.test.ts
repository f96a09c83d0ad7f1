import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { TestTime } from "@refpersys/testkit"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Scope } from "effect"
import * as Agenda from "../src/Agenda.js"
import { AgendaClosed, GcTimeout } from "../src/AgendaError.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined

/** Submits a tasklet that ignores interruption for ever, and waits until it runs. */
const stuck = (agenda: Agenda.Agenda, label = "stuck") =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const handle = yield* agenda.submit(
      Effect.uninterruptible(Effect.andThen(Deferred.succeed(started, undefined), Effect.never)),
      { label }
    )
    yield* Deferred.await(started)
    return handle
  })

const isDone = <A, E>(fiber: Fiber.Fiber<A, E>) => Effect.sync(() => fiber.pollUnsafe() !== undefined)

describe("Agenda shutdown bounds", () => {
  it.effect("closeTimeout bounds scope close even when a tasklet ignores interruption", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const agenda = yield* Scope.provide(
        Agenda.make({ workers: 2, closeTimeout: "300 millis", abandonAfter: "200 millis" }),
        scope
      )
      const handle = yield* stuck(agenda)
      const done = yield* agenda.submit(Effect.succeed("quick"))
      yield* done.join
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      // Drain bound, then the bound on interrupted tasklets: both on the clock.
      yield* TestTime.advanceUntil(isDone(closing), "100 millis", { maxSteps: 20 })
      yield* Fiber.join(closing)
      expect(handle.outcome).toBe("Interrupted")
      const stats = yield* agenda.stats
      expect(stats.state).toBe("stopped")
      expect(stats.total.interrupted).toBe(1)
      expect(stats.total.completed).toBe(1)
      expect(stats.total.running).toBe(0)
      expect(stats.total.balanced).toBe(true)
    }))

  it.effect("quit({ timeout }) falls back to exit and abandons a tasklet that ignores interruption", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 1, abandonAfter: "1 second" })
      const handle = yield* stuck(agenda)
      const queued = yield* agenda.submit(Effect.void)
      const quitting = yield* Effect.forkChild(agenda.quit({ timeout: "2 seconds" }))
      yield* TestTime.advanceUntil(isDone(quitting), "500 millis", { maxSteps: 20 })
      const report = yield* Fiber.join(quitting)
      expect(report).toMatchObject({ mode: "exit", timedOut: true, dropped: 1, interrupted: 1, abandoned: 1 })
      expect(handle.outcome).toBe("Interrupted")
      expect(queued.outcome).toBe("Dropped")
      expect(report.stats.total.balanced).toBe(true)
    }))

  it.effect("exit abandons an uninterruptible busy loop that parks at safePoint", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2, abandonAfter: "1 second" })
      const started = yield* Deferred.make<void>()
      const handle = yield* agenda.submit(
        Effect.uninterruptible(Effect.andThen(
          Deferred.succeed(started, undefined),
          Effect.forever(Effect.andThen(Agenda.safePoint, Effect.yieldNow))
        ))
      )
      yield* Deferred.await(started)
      const exiting = yield* Effect.forkChild(agenda.exit)
      yield* TestTime.advanceUntil(isDone(exiting), "250 millis", { maxSteps: 20 })
      const report = yield* Fiber.join(exiting)
      expect(report.abandoned).toBe(1)
      expect(report.interrupted).toBe(1)
      expect(handle.outcome).toBe("Interrupted")
      expect(report.stats.total.balanced).toBe(true)
      // The later calls share the report.
      expect(yield* agenda.exit).toBe(report)
    }))

  it.effect("an interrupted tasklet that ends within abandonAfter is not abandoned", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 1 })
      const started = yield* Deferred.make<void>()
      let finalized = false
      yield* agenda.submit(
        Effect.andThen(Deferred.succeed(started, undefined), Effect.never).pipe(
          Effect.ensuring(Effect.sync(() => void (finalized = true)))
        )
      )
      yield* Deferred.await(started)
      const report = yield* agenda.exit
      expect(report).toMatchObject({ interrupted: 1, abandoned: 0 })
      expect(finalized).toBe(true)
    }))
})

describe("Agenda self-stop", () => {
  it.effect("a tasklet that quits its own agenda gets the report once the others ended, then ends itself", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2 })
      const gate = yield* Deferred.make<void>()
      const other = yield* agenda.submit(Effect.as(Deferred.await(gate), "other"))
      const queued = yield* agenda.submit(Effect.succeed("queued"))
      const quitter = yield* agenda.submit(
        Effect.gen(function*() {
          const report = yield* agenda.quit()
          return report
        }),
        { label: "quitter" }
      )
      yield* Deferred.succeed(gate, undefined)
      const report = yield* quitter.join
      expect(report.mode).toBe("quit")
      expect(other.outcome).toBe("Completed")
      expect(queued.outcome).toBe("Completed")
      // The caller was still running when the report was made.
      expect(report.stats.total.running).toBe(1)
      expect(report.stats.total.balanced).toBe(true)
      expect(quitter.outcome).toBe("Completed")
      const stats = yield* agenda.stats
      expect(stats.total.completed).toBe(3)
      expect(stats.total.balanced).toBe(true)
      // An outside quit gets the same report.
      expect(yield* agenda.quit()).toBe(report)
    }))

  it.effect("a tasklet that exits its own agenda gets the report: others are interrupted and dropped, it runs on", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2 })
      const started = yield* Deferred.make<void>()
      const other = yield* agenda.submit(Effect.andThen(Deferred.succeed(started, undefined), Effect.never))
      yield* Deferred.await(started)
      const exiter = yield* agenda.submit(
        Effect.gen(function*() {
          const report = yield* agenda.exit
          yield* Effect.yieldNow
          return report
        })
      )
      const queued = yield* agenda.submit(Effect.void)
      const report = yield* exiter.join
      expect(report).toMatchObject({ mode: "exit", interrupted: 1, dropped: 1, abandoned: 0 })
      expect(report.stats.total.running).toBe(1)
      expect(report.stats.total.balanced).toBe(true)
      expect(other.outcome).toBe("Interrupted")
      expect(queued.outcome).toBe("Dropped")
      expect(exiter.outcome).toBe("Completed")
      const stats = yield* agenda.stats
      expect(stats.total).toMatchObject({ interrupted: 1, dropped: 1, completed: 1, running: 0 })
      expect(stats.total.balanced).toBe(true)
    }))

  it.effect("a tasklet that calls exit and then never ends is interrupted by scope close, then abandoned", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const agenda = yield* Scope.provide(Agenda.make({ workers: 1, abandonAfter: "1 second" }), scope)
      const exited = yield* Deferred.make<void>()
      const handle = yield* agenda.submit(Effect.uninterruptible(Effect.gen(function*() {
        yield* agenda.exit
        yield* Deferred.succeed(exited, undefined)
        yield* Effect.never
      })))
      yield* Deferred.await(exited)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestTime.advanceUntil(isDone(closing), "250 millis", { maxSteps: 20 })
      yield* Fiber.join(closing)
      expect(handle.outcome).toBe("Interrupted")
      expect((yield* agenda.stats).total).toMatchObject({ interrupted: 1, running: 0 })
    }))

  it.effect("a fiber forked by a tasklet may quit the agenda while the tasklet joins it", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 1 })
      const handle = yield* agenda.submit(
        Effect.flatMap(Effect.forkChild(agenda.quit({ timeout: "1 minute" })), Fiber.join)
      )
      const report = yield* handle.join
      expect(report).toMatchObject({ mode: "quit", timedOut: false })
    }))

  it.effect("scope close waits for a tasklet that quit the agenda itself", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const agenda = yield* Scope.provide(Agenda.make({ workers: 1 }), scope)
      const proceed = yield* Deferred.make<void>()
      const quitted = yield* Deferred.make<void>()
      let ended = false
      yield* agenda.submit(Effect.gen(function*() {
        yield* agenda.quit()
        yield* Deferred.succeed(quitted, undefined)
        yield* Deferred.await(proceed)
        ended = true
      }))
      yield* Deferred.await(quitted)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Deferred.succeed(proceed, undefined)
      yield* Fiber.join(closing)
      expect(ended).toBe(true)
      expect((yield* agenda.stats).total).toMatchObject({ completed: 1, running: 0 })
    }))
})

describe("Agenda GC barrier bounds", () => {
  it.effect("a tasklet that requests GC counts as parked: the collector runs, then the tasklet goes on", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2 })
      const events: Array<string> = []
      const handle = yield* agenda.submit(Effect.gen(function*() {
        events.push("before")
        yield* agenda.requestGc(Effect.sync(() => void events.push("collect")))
        events.push("after")
        return "done"
      }))
      expect(yield* handle.join).toBe("done")
      expect(events).toEqual(["before", "collect", "after"])
      const stats = yield* agenda.stats
      expect(stats.gcCycles).toBe(1)
      expect(stats.workers.every((w) => w.state !== "GC")).toBe(true)
      expect(yield* agenda.run(Effect.succeed(1))).toBe(1)
    }))

  it.effect("a barrier that cannot form gives up after gcTimeout, naming the busy tasklet; work goes on", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2, gcTimeout: "2 seconds" })
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const long = yield* agenda.submit(
        Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(gate)),
        { label: "long sleeper" }
      )
      yield* Deferred.await(started)
      const request = yield* Effect.forkChild(agenda.requestGc(Effect.void))
      const queued = yield* agenda.submit(Effect.succeed("after the barrier"))
      yield* TestTime.advanceUntil(isDone(request), "500 millis", { maxSteps: 20 })
      const error = failureOf(yield* Fiber.await(request))
      expect(error).toBeInstanceOf(GcTimeout)
      expect(error).toMatchObject({ phase: "forming", timeoutMs: 2000, busy: ["long sleeper"] })
      expect((error as GcTimeout).message).toContain("safePoint")
      expect(yield* queued.join).toBe("after the barrier")
      yield* Deferred.succeed(gate, undefined)
      yield* long.join
      const stats = yield* agenda.stats
      expect(stats.gcTimeouts).toBe(1)
      expect(stats.gcCycles).toBe(0)
      expect(stats.total.balanced).toBe(true)
    }))

  it.effect("a collector that never ends is given up after gcTimeout; the parked workers resume", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2, gcTimeout: "1 second" })
      const request = yield* Effect.forkChild(agenda.requestGc(Effect.uninterruptible(Effect.never)))
      yield* TestTime.advanceUntil(isDone(request), "250 millis", { maxSteps: 20 })
      expect(failureOf(yield* Fiber.await(request))).toMatchObject({ _tag: "GcTimeout", phase: "collecting" })
      expect(yield* agenda.run(Effect.succeed("resumed"))).toBe("resumed")
      expect((yield* agenda.stats).workers.every((w) => w.state !== "GC")).toBe(true)
    }))

  it.effect("exit wins over a collector that never ends; the request is told why", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2, gcTimeout: "infinity" })
      const collecting = yield* Deferred.make<void>()
      const request = yield* Effect.forkChild(
        agenda.requestGc(Effect.uninterruptible(Effect.andThen(Deferred.succeed(collecting, undefined), Effect.never)))
      )
      yield* Deferred.await(collecting)
      const report = yield* agenda.exit
      expect(report.mode).toBe("exit")
      const error = failureOf(yield* Fiber.await(request))
      expect(error).toBeInstanceOf(AgendaClosed)
      expect((error as AgendaClosed).action).toBe("requestGc")
      expect((error as AgendaClosed).message).not.toContain("submit before")
      expect((error as AgendaClosed).message).toContain("GC request was not served")
    }))

  it.effect("quit({ timeout }) returns while a collector never ends", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 1, gcTimeout: "infinity" })
      const started = yield* Deferred.make<void>()
      const parked = yield* agenda.submit(
        Effect.andThen(Deferred.succeed(started, undefined), Effect.forever(Effect.andThen(Agenda.safePoint, Effect.yieldNow)))
      )
      yield* Deferred.await(started)
      const collecting = yield* Deferred.make<void>()
      yield* Effect.forkChild(
        agenda.requestGc(Effect.uninterruptible(Effect.andThen(Deferred.succeed(collecting, undefined), Effect.never)))
      )
      yield* Deferred.await(collecting)
      const quitting = yield* Effect.forkChild(agenda.quit({ timeout: "1 second" }))
      yield* TestTime.advanceUntil(isDone(quitting), "250 millis", { maxSteps: 20 })
      const report = yield* Fiber.join(quitting)
      expect(report).toMatchObject({ mode: "exit", timedOut: true, interrupted: 1 })
      expect(parked.outcome).toBe("Interrupted")
      expect(report.stats.total.balanced).toBe(true)
    }))
})
