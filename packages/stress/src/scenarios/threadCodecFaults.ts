/**
 * Thread codec faults: many thread tasklets on two threads, some of which
 * return or fail with values that pass `Schema.Any` but cannot be
 * structured-cloned (a function, a Symbol), and some submitted with
 * arguments that cannot be cloned. Each bad tasklet must fail with
 * `TaskCodecError` at its stage and path; every other one must keep its
 * real outcome (no thread crash, no `ThreadCrashed` for the innocent), and
 * the counts must add up.
 *
 * Needs the built packages (`tsc -b`): worker threads load the task module
 * from `dist`. `@refpersys/threads` is loaded when the scenario runs, so
 * child processes running other scenarios do not load it.
 *
 * @since 0.1.0
 */
import type { ThreadAgendaError } from "@refpersys/threads"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { Checks } from "../internal/checks.js"
import * as Scenario from "../Scenario.js"
import type * as Tasks from "./threadCodecTasks.js"

const NAME = "thread-codec-faults"

const sizes = { small: { tasklets: 600, boundSeconds: 40 }, full: { tasklets: 20_000, boundSeconds: 300 } }

type Case = "ok" | "fail" | "function" | "symbol" | "errorWithFunction" | "argsWithFunction"

/** One bad case in three; the innocent ones around them share their dispatch and result messages. */
const cases: ReadonlyArray<Case> = ["ok", "function", "ok", "fail", "symbol", "ok", "errorWithFunction", "ok", "argsWithFunction"]

const expectedCodec: Partial<Record<Case, { readonly stage: string; readonly path: string }>> = {
  function: { stage: "encodeSuccess", path: "nested[1].callback" },
  symbol: { stage: "encodeSuccess", path: "" },
  errorWithFunction: { stage: "encodeFailure", path: "payload.retry" },
  argsWithFunction: { stage: "encodeArgs", path: "extra.log" }
}

const argsOf = (c: Case, n: number) =>
  c === "argsWithFunction" ? { kind: "ok" as const, n, extra: { log: () => n } } : { kind: c, n }

/** Whether `exit` is the outcome case `c` of tasklet `n` must have; a description of what it was otherwise. */
const verdict = (
  c: Case,
  n: number,
  exit: Exit.Exit<unknown, unknown>,
  classes: { readonly Carrying: typeof Tasks.Carrying; readonly TaskCodecError: typeof ThreadAgendaError.TaskCodecError }
): string | undefined => {
  const { Carrying, TaskCodecError } = classes
  const failure = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined
  const got = () => Exit.isSuccess(exit) ? `success ${String(exit.value)}` : Cause.pretty(exit.cause).split("\n")[0]
  if (c === "ok") return Exit.isSuccess(exit) && exit.value === 2 * n ? undefined : got()
  if (c === "fail") return failure instanceof Carrying && failure.payload === n ? undefined : got()
  const codec = expectedCodec[c]!
  return failure instanceof TaskCodecError && failure.stage === codec.stage &&
      failure.path === codec.path
    ? undefined
    : got()
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
    "values that cannot be structured-cloned fail only their own thread tasklet with TaskCodecError (stage and path); every other tasklet keeps its real outcome, no thread crashes, and the counts add up",
  body: (size) =>
    Effect.gen(function*() {
      const { boundSeconds, tasklets: n } = sizes[size]
      const checks = new Checks()
      const { ThreadAgenda, ThreadAgendaError } = yield* Effect.promise(() => import("@refpersys/threads"))
      const { Carrying, codecFault } = yield* Effect.promise(() => import("./threadCodecTasks.js"))
      const classes = { Carrying, TaskCodecError: ThreadAgendaError.TaskCodecError }
      const agenda = yield* ThreadAgenda.make({ threads: 2, localQueue: 16, logFailures: false, onClose: "exit" })
      const handles = yield* Effect.forEach(
        Array.from({ length: n }, (_, i) => i),
        (i) => agenda.submit(codecFault, argsOf(cases[i % cases.length], i))
      )
      const exits = yield* Effect.forEach(handles, (h) => h.await).pipe(
        Effect.timeout(`${boundSeconds} seconds`),
        Effect.option
      )
      if (Option.isNone(exits)) {
        checks.add(`the tasklets did not all end within ${boundSeconds} seconds`)
        return { sent: n, arrived: 0, lost: n, violations: checks.list }
      }
      let asExpected = 0
      let innocent = 0
      let codecErrors = 0
      exits.value.forEach((exit, i) => {
        const c = cases[i % cases.length]
        if (expectedCodec[c] === undefined) innocent++
        else codecErrors++
        const wrong = verdict(c, i, exit, classes)
        if (wrong === undefined) asExpected++
        else checks.add(`tasklet ${i} (${c}): ${wrong}`)
      })
      const threadStats = yield* agenda.threadStats
      checks.equal("thread crashes", threadStats.crashes, 0)
      const stats = yield* agenda.stats
      checks.equal("submitted", stats.total.submitted, n)
      checks.equal("completed", stats.total.completed, exits.value.filter(Exit.isSuccess).length)
      checks.that(stats.total.balanced, "agenda accounting does not add up")
      // Still serving after all that.
      const after = yield* agenda.run(codecFault, { kind: "ok", n: 21 }).pipe(Effect.result)
      checks.that(after._tag === "Success" && after.success === 42, "the agenda did not run a tasklet afterwards")
      yield* agenda.exit
      return {
        sent: n,
        arrived: asExpected,
        lost: n - asExpected,
        violations: checks.list,
        figures: {
          tasklets: n,
          threads: 2,
          innocent,
          codecErrors,
          outcomesNotAsExpected: n - asExpected,
          threadCrashes: threadStats.crashes,
          dispatchMessages: threadStats.batches,
          resultMessages: threadStats.resultBatches
        }
      }
    })
})
