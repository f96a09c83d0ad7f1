/**
 * Stuck collector: a garbage-collection barrier whose collector never ends
 * (it ignores interruption too), requested while hundreds of tasklets run
 * and park at safe points. With a finite `gcTimeout` the request fails with
 * `GcTimeout` within the bound and the work resumes; with no GC bound,
 * `exit` and `quit({ timeout })` still return within their own bounds. The
 * counts must add up every time. The scenario releases its collectors at the
 * end, so no fiber outlives it.
 *
 * @since 0.1.0
 */
import { Agenda } from "@refpersys/core"
import type { Tasklet } from "@refpersys/core"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import { Checks } from "../internal/checks.js"
import * as Scenario from "../Scenario.js"

const NAME = "stuck-collector"

const sizes = { small: { rounds: 6, tasklets: 400 }, full: { rounds: 60, tasklets: 5_000 } }

/** How a round gets out of the stuck barrier. */
type Way = "gc-timeout" | "exit" | "quit-timeout"
const WAYS: ReadonlyArray<Way> = ["gc-timeout", "exit", "quit-timeout"]

const GC_TIMEOUT = Duration.millis(300)
const QUIT_TIMEOUT = Duration.millis(300)
const ABANDON_AFTER = Duration.millis(300)
/** Far above the bounds above, so only a hang trips it, even on a loaded machine. */
const HANG = Duration.seconds(20)

const levels = ["High", "Normal", "Low"] as const

const body = (size: Scenario.Size) =>
  Effect.gen(function*() {
    const { rounds, tasklets } = sizes[size]
    const checks = new Checks()
    let sent = 0
    let arrived = 0
    let gcTimeouts = 0
    let slowestMs = 0
    const release = yield* Deferred.make<void>()
    for (let round = 0; round < rounds; round++) {
      const way = WAYS[round % WAYS.length]
      const scope = yield* Scope.make()
      const agenda = yield* Scope.provide(
        Agenda.make({
          name: `stuck-collector-${round}`,
          workers: 4,
          logFailures: false,
          gcTimeout: way === "gc-timeout" ? GC_TIMEOUT : "infinity",
          abandonAfter: ABANDON_AFTER
        }),
        scope
      )
      const handles: Array<Tasklet.TaskletHandle<unknown, unknown>> = []
      const steps = (n: number) => Effect.forEach(Array.from({ length: n }), () => Effect.andThen(Agenda.safePoint, Effect.yieldNow), { discard: true })
      for (let i = 0; i < tasklets; i++) {
        const handle = agenda.unsafeSubmit(steps(1 + (i % 20)), { priority: levels[i % 3] })
        if ("id" in handle) {
          handles.push(handle)
          sent++
        } else checks.add(`round ${round}: submission ${i} refused: ${handle.message}`)
      }
      const collecting = yield* Deferred.make<void>()
      const stuck = Effect.uninterruptible(Effect.andThen(Deferred.succeed(collecting, undefined), Deferred.await(release)))
      const request = yield* Effect.forkChild(agenda.requestGc(stuck))
      const formed = yield* Deferred.await(collecting).pipe(Effect.timeout(HANG), Effect.option)
      checks.that(formed._tag === "Some", `round ${round} (${way}): the barrier never formed`)
      const start = performance.now()
      if (way === "gc-timeout") {
        const result = yield* Fiber.await(request).pipe(Effect.timeout(HANG), Effect.option)
        const error = result._tag === "Some" && Exit.isFailure(result.value) ? String(result.value.cause) : ""
        checks.that(error.includes("GcTimeout"), `round ${round}: the request did not fail with GcTimeout (${error || "no result"})`)
        if (error.includes("GcTimeout")) gcTimeouts++
        // The work resumes after the barrier was given up.
        const idle = yield* agenda.whenIdle.pipe(Effect.timeout(HANG), Effect.option)
        checks.that(idle._tag === "Some", `round ${round}: the tasklets did not finish after the barrier was given up`)
      } else {
        const stop = way === "exit" ? agenda.exit : agenda.quit({ timeout: QUIT_TIMEOUT })
        const report = yield* stop.pipe(Effect.timeout(HANG), Effect.option)
        checks.that(report._tag === "Some", `round ${round} (${way}): the stop did not return`)
        if (report._tag === "Some") {
          checks.that(report.value.stats.total.balanced, `round ${round} (${way}): the report's counts do not add up`)
        }
        const told = yield* Fiber.await(request).pipe(Effect.timeout(HANG), Effect.option)
        checks.that(told._tag === "Some" && Exit.isFailure(told.value), `round ${round} (${way}): the GC request was not failed`)
      }
      slowestMs = Math.max(slowestMs, performance.now() - start)
      const closed = yield* Scope.close(scope, Exit.void).pipe(Effect.timeout(HANG), Effect.option)
      checks.that(closed._tag === "Some", `round ${round} (${way}): scope close did not return`)
      for (const h of handles) if (h.outcome !== undefined) arrived++
      const stats = yield* agenda.stats
      checks.that(stats.total.balanced, `round ${round} (${way}): the counts do not add up`)
      checks.equal(`round ${round} (${way}): tasklets running after scope close`, stats.total.running, 0)
      yield* Scenario.progress(NAME, `${round + 1} of ${rounds} rounds`)
    }
    // The stuck collectors end now: nothing of this scenario stays behind.
    yield* Deferred.succeed(release, undefined)
    return {
      sent,
      arrived,
      lost: Math.max(0, sent - arrived),
      violations: checks.list,
      figures: { rounds, gcTimeouts, slowestEscapeMs: Math.round(slowestMs) }
    }
  })

/**
 * The scenario.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "a GC collector that never ends holds the agenda no longer than gcTimeout, and exit or quit({ timeout }) return within their bounds; the counts add up",
  body
})
