/**
 * Self-stop: tasklets that call `quit`, `quit({ timeout })`, `exit` or
 * `requestGc` on their own agenda while hundreds of others run, queue and
 * hit safe points (one in twenty requests GC from inside its tasklet). Nothing may hang (each round has a bound), the stopping
 * tasklet gets its report and ends itself, every submitted tasklet ends in
 * exactly one outcome, and the counts add up.
 *
 * @since 0.1.0
 */
import { Agenda } from "@refpersys/core"
import type { AgendaStats, Tasklet } from "@refpersys/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import { Checks } from "../internal/checks.js"
import { Prng } from "../internal/prng.js"
import * as Scenario from "../Scenario.js"

const NAME = "self-stop"

const sizes = { small: { rounds: 12, tasklets: 600 }, full: { rounds: 40, tasklets: 5_000 } }

/** How a round's stopping tasklet stops its agenda. */
type Stop = "quit" | "quit-timeout" | "exit" | "forked-quit"
const STOPS: ReadonlyArray<Stop> = ["quit", "quit-timeout", "exit", "forked-quit"]

/** A round must end well within this, on a loaded machine too. */
const ROUND_BOUND = Duration.seconds(20)

const levels = ["High", "Normal", "Low"] as const

const body = (size: Scenario.Size) =>
  Effect.gen(function*() {
    const { rounds, tasklets } = sizes[size]
    const checks = new Checks()
    const prng = new Prng(0x5e1f)
    let sent = 0
    let arrived = 0
    let gcFromTasklets = 0
    let reportsSeen = 0
    let gcTimeouts = 0
    const stopsDone: Record<Stop, number> = { "quit": 0, "quit-timeout": 0, "exit": 0, "forked-quit": 0 }
    for (let round = 0; round < rounds; round++) {
      const stop = STOPS[round % STOPS.length]
      const scope = yield* Scope.make()
      const agenda = yield* Scope.provide(
        // A quit called from a forked fiber does not count its tasklet as
        // parked (the tasklet may be running), so barriers formed meanwhile
        // wait for that tasklet until gcTimeout: kept short here.
        Agenda.make({ name: `self-stop-${round}`, workers: 4, logFailures: false, gcTimeout: "100 millis" }),
        scope
      )
      const handles: Array<Tasklet.TaskletHandle<unknown, unknown>> = []
      const stopAt = Math.floor(tasklets / 2)
      let report: AgendaStats.ShutdownReport | undefined
      for (let i = 0; i < tasklets; i++) {
        const kind = i === stopAt ? "stop" : prng.int(0, 19) === 0 ? "gc" : "work"
        const effect: Effect.Effect<unknown, unknown> = kind === "stop"
          ? Effect.tap(stopEffect(agenda, stop), (r) => Effect.sync(() => void (report = r)))
          : kind === "gc"
          ? Effect.tap(agenda.requestGc(Effect.void), () => Effect.sync(() => void gcFromTasklets++))
          : Effect.andThen(Agenda.safePoint, Effect.yieldNow)
        const handle = agenda.unsafeSubmit(effect, { priority: levels[i % 3] })
        if ("id" in handle) {
          handles.push(handle)
          sent++
        } else {
          checks.add(`round ${round}: submission ${i} refused: ${handle.message}`)
        }
      }
      const stopper = handles[stopAt]
      const ended = yield* stopper.await.pipe(Effect.timeout(ROUND_BOUND), Effect.option)
      checks.that(ended._tag === "Some", `round ${round} (${stop}): the stopping tasklet did not end within ${Duration.format(ROUND_BOUND)}`)
      const closed = yield* Scope.close(scope, Exit.void).pipe(Effect.timeout(ROUND_BOUND), Effect.option)
      checks.that(closed._tag === "Some", `round ${round} (${stop}): scope close did not return within ${Duration.format(ROUND_BOUND)}`)
      if (report !== undefined) {
        reportsSeen++
        stopsDone[stop]++
        checks.that(report.stats.total.balanced, `round ${round} (${stop}): the report's counts do not add up`)
      } else {
        checks.add(`round ${round} (${stop}): the stopping tasklet got no report (outcome ${stopper.outcome})`)
      }
      for (const h of handles) if (h.outcome !== undefined) arrived++
      const stats = yield* agenda.stats
      gcTimeouts += stats.gcTimeouts ?? 0
      checks.that(stats.total.balanced, `round ${round} (${stop}): the counts do not add up`)
      checks.equal(`round ${round} (${stop}): tasklets still running after scope close`, stats.total.running, 0)
      checks.equal(`round ${round} (${stop}): tasklets submitted`, stats.total.submitted, handles.length)
      if (round % 4 === 3) yield* Scenario.progress(NAME, `${round + 1} of ${rounds} rounds`)
    }
    return {
      sent,
      arrived,
      lost: Math.max(0, sent - arrived),
      violations: checks.list,
      figures: {
        rounds,
        reportsSeen,
        gcFromTasklets,
        gcTimeouts,
        ...Object.fromEntries(STOPS.map((s) => [`stops ${s}`, stopsDone[s]]))
      }
    }
  })

const stopEffect = (agenda: Agenda.Agenda, stop: Stop): Effect.Effect<AgendaStats.ShutdownReport, unknown> => {
  switch (stop) {
    case "quit":
      return agenda.quit()
    case "quit-timeout":
      return agenda.quit({ timeout: "200 millis" })
    case "exit":
      return agenda.exit
    case "forked-quit":
      return Effect.flatMap(Effect.forkChild(agenda.quit()), (fiber) => Fiber.join(fiber))
  }
}

/**
 * The scenario.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "tasklets that quit, exit or request GC on their own agenda under load never hang it: each gets its report, every tasklet ends once and the counts add up",
  body
})
