/**
 * Shutdown under load: SIGTERM, a `Q` or `X` command, two SIGINTs, or a quit
 * whose deadline passes, at a random moment of a saturated run, many times
 * over. Quit must finish everything the agenda accepted; exit must report
 * every tasklet it dropped or interrupted; every accepted tasklet must end
 * exactly once and the counts must add up, every time. Some runs are whole
 * child processes, which must then exit by themselves: no handle left alive.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Checks } from "../internal/checks.js"
import * as Child from "../internal/child.js"
import * as Load from "../internal/load.js"
import { Prng } from "../internal/prng.js"
import { activeResources, waitFor } from "../internal/probes.js"
import * as Runtime from "../internal/runtime.js"
import * as Scenario from "../Scenario.js"

const NAME = "shutdown-under-load"

const sizes = { small: { runs: 15, children: 2 }, full: { runs: 200, children: 20 } }

/**
 * What stops a run. `SIGTERM (parent)` is sent by a parent process to a
 * child run; the others are raised by the run itself.
 */
const Trigger = Schema.Literals(["SIGTERM", "SIGTERM (parent)", "Q", "X", "SIGINT twice", "Q past quitTimeout"])
type Trigger = typeof Trigger.Type

const inProcessTriggers: ReadonlyArray<Trigger> = ["SIGTERM", "Q", "X", "SIGINT twice", "Q past quitTimeout"]

/** The outcome of one run, as a child prints it. */
const RunResult = Schema.Struct({
  trigger: Trigger,
  accepted: Schema.Number,
  ended: Schema.Number,
  refused: Schema.Number,
  mode: Schema.String,
  timedOut: Schema.Boolean,
  dropped: Schema.Number,
  interrupted: Schema.Number,
  completed: Schema.Number,
  failed: Schema.Number,
  /** Node resources still alive after the run's scope closed, by type. */
  resources: Schema.Array(Schema.String),
  violations: Schema.Array(Schema.String)
})
type RunResult = typeof RunResult.Type

const expectedCause: Record<Trigger, ReadonlyArray<string>> = {
  "SIGTERM": ["SIGTERM"],
  "SIGTERM (parent)": ["SIGTERM"],
  "Q": ["command Q"],
  "X": ["command X"],
  // The second SIGINT exits, unless the quit of the first one already finished.
  "SIGINT twice": ["second SIGINT", "SIGINT"],
  "Q past quitTimeout": ["command Q"]
}

/** One saturated run stopped by `trigger`; `ready` is called when the load is up (for a parent to signal). */
const oneRun = (seed: number, trigger: Trigger, ready: () => void = () => {}) =>
  Effect.scoped(Effect.gen(function*() {
    const prng = new Prng(seed)
    const checks = new Checks()
    const { agenda, loop } = yield* Runtime.make({
      agenda: { workers: prng.int(1, 4), capacity: prng.int(4, 64), logFailures: false },
      loop: {
        signals: ["SIGTERM", "SIGINT"],
        ...(trigger === "Q past quitTimeout" ? { quitTimeout: prng.int(0, 5) } : {})
      }
    })
    const load = yield* Load.start(agenda, {
      prng,
      submitters: prng.int(1, 3),
      kinds: ["spin", "spin", "yield", "yield", "sleep", "fail", "die"]
    })
    // A random moment: after a random number of accepted tasklets.
    const moment = prng.int(1, 300)
    checks.that(yield* waitFor(() => load.accepted() >= moment, "20 seconds"), "the load never came up")
    switch (trigger) {
      case "SIGTERM":
        process.kill(process.pid, "SIGTERM")
        break
      case "SIGTERM (parent)":
        ready()
        break
      case "Q":
      case "Q past quitTimeout":
        yield* loop.send("Q")
        break
      case "X":
        yield* loop.send("X")
        break
      case "SIGINT twice":
        process.kill(process.pid, "SIGINT")
        yield* waitFor(() => Effect.runSync(loop.stats).state !== "running", "20 seconds")
        process.kill(process.pid, "SIGINT")
        break
    }
    const stopped = yield* Effect.timeout(loop.awaitStop, "60 seconds").pipe(Effect.option)
    if (stopped._tag === "None") {
      checks.add("the loop did not stop within 60 seconds")
      return { load, checks, stopped: undefined }
    }
    const finished = yield* Effect.timeout(load.done, "30 seconds").pipe(Effect.isSuccess)
    checks.that(finished, "submitters were still blocked 30 seconds after the stop")
    return { load, checks, stopped: stopped.value }
  })).pipe(
    Effect.map(({ checks, load, stopped }): RunResult => {
      const accepted = load.accepted()
      const ended = load.endedTotal()
      if (stopped === undefined) {
        return {
          trigger,
          accepted,
          ended,
          refused: load.refused(),
          mode: "none",
          timedOut: false,
          dropped: 0,
          interrupted: 0,
          completed: load.ended.Completed,
          failed: load.ended.Failed,
          resources: [],
          violations: checks.list
        }
      }
      const report = stopped.agenda
      const total = report.stats.total
      checks.that(expectedCause[trigger].includes(stopped.cause), `stopped by "${stopped.cause}" after ${trigger}`)
      checks.that(total.balanced, "agenda accounting does not add up")
      checks.equal("tasklets still queued or running after the stop", total.queued + total.running, 0)
      checks.equal("tasklets the agenda counts as submitted", total.submitted, accepted)
      checks.equal("accepted tasklets that ended", ended, accepted)
      checks.equal("completed (agenda vs observed)", total.completed, load.ended.Completed)
      checks.equal("failed (agenda vs observed)", total.failed, load.ended.Failed)
      checks.equal("dropped (report vs observed)", report.dropped, load.ended.Dropped)
      checks.equal("interrupted (report vs observed)", report.interrupted, load.ended.Interrupted)
      checks.equal("obsolete", load.ended.Obsolete, 0)
      if (report.mode === "quit") {
        checks.equal("dropped by a quit", report.dropped, 0)
        checks.equal("interrupted by a quit", report.interrupted, 0)
        checks.equal("failed tasklets (each one planned)", load.ended.Failed, load.meantToFail())
      }
      if (trigger === "X") checks.equal("shutdown mode after X", report.mode, "exit")
      if (trigger === "SIGTERM" || trigger === "SIGTERM (parent)" || trigger === "Q") {
        checks.equal(`shutdown mode after ${trigger}`, report.mode, "quit")
      }
      return {
        trigger,
        accepted,
        ended,
        refused: load.refused(),
        mode: report.mode,
        timedOut: report.timedOut,
        dropped: report.dropped,
        interrupted: report.interrupted,
        completed: load.ended.Completed,
        failed: load.ended.Failed,
        resources: [...activeResources().keys()],
        violations: checks.list
      }
    })
  )

/**
 * The body of a child run (`--child shutdown --seed n --trigger t`): prints
 * `ready` when its load is up, then its {@link RunResult} as a JSON line,
 * and returns; the process must then exit by itself.
 *
 * @since 0.1.0
 * @category child
 */
export const childRun = (seed: number, trigger: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    let unhandled = 0
    process.on("unhandledRejection", () => {
      unhandled++
    })
    const parsed = Schema.decodeUnknownSync(Trigger)(trigger)
    const result = yield* oneRun(seed, parsed, () => process.stdout.write("ready\n"))
    const violations = unhandled > 0 ? [...result.violations, `${unhandled} unhandled rejection(s)`] : result.violations
    process.stdout.write(`${JSON.stringify(Schema.encodeSync(RunResult)({ ...result, violations }))}\n`)
  }).pipe(Effect.orDie)

const decodeResult = Schema.decodeUnknownOption(Schema.fromJsonString(RunResult))

const inChild = (seed: number, trigger: Trigger) =>
  Effect.map(
    Child.run(["--child", "shutdown", "--seed", String(seed), "--trigger", trigger], {
      timeout: 60_000,
      onLine: (line, child) => {
        if (line === "ready") child.kill("SIGTERM")
      }
    }),
    (finished) => {
      const violations: Array<string> = []
      const last = [...finished.lines].reverse().find((line) => line.startsWith("{"))
      const decoded = last === undefined ? undefined : Option.getOrUndefined(decodeResult(last))
      if (finished.killed) violations.push("the child process did not exit by itself: a handle kept it alive")
      else if (finished.code !== 0) {
        violations.push(`the child process exited with code ${finished.code}, signal ${finished.signal}: ${finished.stderr.slice(-400)}`)
      }
      if (decoded === undefined) violations.push("the child process printed no result")
      else violations.push(...decoded.violations)
      return { decoded, violations, killed: finished.killed }
    }
  )

interface Totals {
  runs: number
  accepted: number
  ended: number
  refused: number
  dropped: number
  interrupted: number
  completed: number
  failed: number
  timedOut: number
  byTrigger: Record<string, number>
  byMode: Record<string, number>
}

const add = (totals: Totals, r: RunResult) => {
  totals.runs++
  totals.accepted += r.accepted
  totals.ended += r.ended
  totals.refused += r.refused
  totals.dropped += r.dropped
  totals.interrupted += r.interrupted
  totals.completed += r.completed
  totals.failed += r.failed
  if (r.timedOut) totals.timedOut++
  totals.byTrigger[r.trigger] = (totals.byTrigger[r.trigger] ?? 0) + 1
  totals.byMode[r.mode] = (totals.byMode[r.mode] ?? 0) + 1
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
    "SIGTERM, Q, X, a double SIGINT or a timed-out quit at random moments of a saturated run: quit finishes every accepted tasklet, exit reports every dropped and interrupted one, the counts add up each time, no unhandled rejection, and child runs exit by themselves",
  body: (size) =>
    Effect.gen(function*() {
      const n = sizes[size]
      const prng = new Prng(0x5d0)
      const checks = new Checks()
      const totals: Totals = {
        runs: 0,
        accepted: 0,
        ended: 0,
        refused: 0,
        dropped: 0,
        interrupted: 0,
        completed: 0,
        failed: 0,
        timedOut: 0,
        byTrigger: {},
        byMode: {}
      }
      for (let i = 0; i < n.runs; i++) {
        const trigger = inProcessTriggers[i % inProcessTriggers.length]
        const result = yield* oneRun(prng.int(0, 2 ** 31), trigger)
        add(totals, result)
        for (const v of result.violations) checks.add(`run ${i} (${trigger}): ${v}`)
        if ((i + 1) % Math.ceil(n.runs / 4) === 0) {
          yield* Scenario.progress(NAME, `${i + 1} of ${n.runs} runs in this process, ${totals.accepted.toLocaleString()} tasklets accepted`)
        }
      }
      let killed = 0
      const children = yield* Effect.forEach(
        Array.from({ length: n.children }, (_, i) => ({ seed: prng.int(0, 2 ** 31), i })),
        ({ i, seed }) => Effect.map(inChild(seed, "SIGTERM (parent)"), (r) => ({ ...r, i })),
        { concurrency: 2 }
      )
      for (const child of children) {
        if (child.killed) killed++
        if (child.decoded !== undefined) add(totals, child.decoded)
        for (const v of child.violations) checks.add(`child run ${child.i}: ${v}`)
      }
      return {
        sent: totals.accepted,
        arrived: totals.ended,
        lost: totals.accepted - totals.ended,
        leakedHandles: killed,
        violations: checks.list,
        figures: {
          runs: totals.runs,
          childProcessRuns: n.children,
          childrenThatExitedByThemselves: n.children - killed,
          ...Object.fromEntries(Object.entries(totals.byTrigger).map(([k, v]) => [`trigger ${k}`, v])),
          ...Object.fromEntries(Object.entries(totals.byMode).map(([k, v]) => [`mode ${k}`, v])),
          quitsPastTheirTimeout: totals.timedOut,
          accepted: totals.accepted,
          completed: totals.completed,
          failedAsPlanned: totals.failed,
          droppedByExit: totals.dropped,
          interruptedByExit: totals.interrupted,
          submissionsRefusedAfterClose: totals.refused
        }
      }
    })
})
