/**
 * Reliability scenarios: each one sends something at the runtime (signals,
 * bytes, faults, tasklets, shutdowns), counts what arrived, and reports what
 * was lost. Nothing should ever be lost.
 *
 * A scenario's body says what it sent, what arrived and which of its own
 * checks failed; {@link run} adds what every scenario must also satisfy: no
 * fd left open, no Node handle left alive, no unhandled rejection, no defect.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { counted, makeCounts } from "./internal/logs.js"
import * as probes from "./internal/probes.js"
import { warmUp } from "./internal/runtime.js"

/**
 * How hard a scenario pushes: `small` for the test suite (seconds), `full`
 * for `npm run stress` (the figures in docs/RELIABILITY.md).
 *
 * @since 0.1.0
 * @category models
 */
export const Size: Schema.Literals<readonly ["small", "full"]> = Schema.Literals(["small", "full"])

/**
 * @since 0.1.0
 * @category models
 */
export type Size = typeof Size.Type

/**
 * A figure of a report: a count, a measure, or a short text.
 *
 * @since 0.1.0
 * @category models
 */
export const Figure: Schema.Union<readonly [typeof Schema.Number, typeof Schema.String]> = Schema.Union([
  Schema.Number,
  Schema.String
])

/**
 * What a scenario run found. `lost` is what was sent and neither arrived nor
 * was reported as refused; `violations` lists every check that failed.
 *
 * @since 0.1.0
 * @category models
 */
export class Report extends Schema.Class<Report>("Report")({
  scenario: Schema.String,
  size: Size,
  sent: Schema.Number,
  arrived: Schema.Number,
  lost: Schema.Number,
  /** Fds open after the run beyond those open before it. */
  leakedFds: Schema.Number,
  /** Node handles alive after the run beyond those before it, plus child processes that did not exit by themselves. */
  leakedHandles: Schema.Number,
  violations: Schema.Array(Schema.String),
  figures: Schema.Record(Schema.String, Figure),
  millis: Schema.Number
}) {
  /** Nothing lost, nothing leaked, no check failed. */
  get clean(): boolean {
    return this.lost === 0 && this.leakedFds === 0 && this.leakedHandles === 0 && this.violations.length === 0
  }
}

/**
 * What a scenario's body returns; {@link run} completes it into a {@link Report}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outcome {
  readonly sent: number
  readonly arrived: number
  readonly lost: number
  readonly violations?: ReadonlyArray<string>
  readonly figures?: Readonly<Record<string, number | string>>
  /** Handles the body found alive on its own (e.g. child processes it had to kill). */
  readonly leakedHandles?: number
  /** Fds the body found left open on its own (e.g. in a child process it ran). */
  readonly leakedFds?: number
}

/**
 * A named scenario and what it proves.
 *
 * @since 0.1.0
 * @category models
 */
export interface Scenario {
  readonly name: string
  /** One sentence: what passing this scenario shows. */
  readonly proves: string
  readonly run: (size: Size) => Effect.Effect<Report>
}

/**
 * Where scenarios report progress (the CLI prints it on stderr); without it
 * in context, progress goes nowhere.
 *
 * @since 0.1.0
 * @category progress
 */
export class Progress extends Context.Service<
  Progress,
  { readonly report: (scenario: string, message: string) => void }
>()("@refpersys/stress/Progress") {}

/**
 * Reports progress of a scenario, if a {@link Progress} is in context.
 *
 * @example
 * ```ts
 * import { Scenario } from "@refpersys/stress"
 *
 * const step = Scenario.progress("signal-storm", "5,000 of 10,000 signals sent")
 * ```
 *
 * @since 0.1.0
 * @category progress
 */
export const progress = (scenario: string, message: string): Effect.Effect<void> =>
  Effect.map(Effect.serviceOption(Progress), Option.match({
    onNone: () => {},
    onSome: (p) => p.report(scenario, message)
  }))

/**
 * Builds a scenario from its body. The run measures open fds and live Node
 * handles before and after the body (after its scope closed), counts
 * unhandled rejections and uncaught exceptions while it runs, and turns a
 * failure or defect of the body into a violation, so that a run always
 * yields a report.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Scenario } from "@refpersys/stress"
 *
 * const echo = Scenario.make({
 *   name: "echo",
 *   proves: "what is sent arrives",
 *   body: (size) => Effect.succeed({ sent: size === "full" ? 10 : 1, arrived: size === "full" ? 10 : 1, lost: 0 })
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly name: string
  readonly proves: string
  readonly body: (size: Size) => Effect.Effect<Outcome, unknown, Scope.Scope>
}): Scenario => ({
  name: options.name,
  proves: options.proves,
  run: (size) =>
    Effect.gen(function*() {
      yield* warmUp
      const fdsBefore = probes.openFds()
      const targetsBefore = new Set(probes.fdTargets())
      const resourcesBefore = probes.activeResources()
      const logs = makeCounts()
      let unhandled = 0
      const onRejection = () => {
        unhandled++
      }
      const onException = () => {
        unhandled++
      }
      process.on("unhandledRejection", onRejection)
      process.on("uncaughtExceptionMonitor", onException)
      const start = performance.now()
      const exit = yield* Effect.exit(Effect.scoped(counted(options.body(size), logs)))
      const millis = performance.now() - start
      // Closing fds and handles can take a turn or two of Node's loop.
      yield* probes.waitFor(
        () => probes.openFds() <= fdsBefore && probes.total(probes.extraResources(resourcesBefore)) === 0,
        "2 seconds"
      )
      process.off("unhandledRejection", onRejection)
      process.off("uncaughtExceptionMonitor", onException)
      const leakedFds = Math.max(0, probes.openFds() - fdsBefore)
      const extra = probes.extraResources(resourcesBefore)
      const violations: Array<string> = []
      let outcome: Outcome = { sent: 0, arrived: 0, lost: 0 }
      if (exit._tag === "Success") outcome = exit.value
      else violations.push(`the scenario itself failed: ${Cause.pretty(exit.cause).split("\n").slice(0, 6).join(" | ")}`)
      violations.push(...(outcome.violations ?? []))
      if (unhandled > 0) violations.push(`${unhandled} unhandled rejection(s) or uncaught exception(s)`)
      if (leakedFds > 0) {
        const opened = probes.fdTargets().filter((t) => !targetsBefore.has(t))
        violations.push(`${leakedFds} fd(s) left open: ${opened.join(" ")}`)
      }
      if (extra.size > 0) violations.push(`Node handles left alive: ${[...extra].map(([t, n]) => `${t}×${n}`).join(", ")}`)
      return new Report({
        scenario: options.name,
        size,
        sent: outcome.sent,
        arrived: outcome.arrived,
        lost: outcome.lost,
        leakedFds: leakedFds + (outcome.leakedFds ?? 0),
        leakedHandles: probes.total(extra) + (outcome.leakedHandles ?? 0),
        violations,
        figures: { ...outcome.figures, logWarnings: logs.warnings, logErrors: logs.errors },
        millis: Math.round(millis)
      })
    })
})
