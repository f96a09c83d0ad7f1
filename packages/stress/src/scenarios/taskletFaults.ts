/**
 * Tasklet faults: failures, defects (thrown or `Effect.die`, in the body or
 * a finalizer), interruptions (self, queued, running), infinite loops with
 * `Agenda.safePoint`, an observer that throws; then a garbage-collection
 * barrier requested while a thousand tasklets run, and an exit of an agenda
 * whose every worker is stuck in an infinite loop. Every tasklet must end in
 * the outcome its fault implies, the counts must add up, and the agenda must
 * go on working.
 *
 * @since 0.1.0
 */
import { Agenda } from "@refpersys/core"
import type { Tasklet } from "@refpersys/core"
import * as Effect from "effect/Effect"
import { Checks } from "../internal/checks.js"
import { Prng } from "../internal/prng.js"
import { gcAvailable, nextTurn, waitFor } from "../internal/probes.js"
import * as Scenario from "../Scenario.js"

const NAME = "tasklet-faults"

const sizes = {
  small: { tasklets: 2_000, concurrent: 200, stuck: 4, queuedBehindStuck: 500 },
  full: { tasklets: 30_000, concurrent: 1_000, stuck: 8, queuedBehindStuck: 10_000 }
}

type Kind =
  | "succeed"
  | "fail"
  | "die"
  | "throw"
  | "dieInFinalizer"
  | "failingChild"
  | "selfInterrupt"
  | "interruptQueued"
  | "interruptRunning"
  | "foreverWithSafePoint"
  | "throwingObserver"
  | "obsolete"

const kinds: ReadonlyArray<Kind> = [
  "succeed",
  "fail",
  "die",
  "throw",
  "dieInFinalizer",
  "failingChild",
  "selfInterrupt",
  "interruptQueued",
  "interruptRunning",
  "foreverWithSafePoint",
  "throwingObserver",
  "obsolete"
]

const expected: Record<Kind, ReadonlyArray<Tasklet.Outcome>> = {
  succeed: ["Completed"],
  fail: ["Failed"],
  die: ["Failed"],
  throw: ["Failed"],
  dieInFinalizer: ["Failed"],
  failingChild: ["Completed"],
  selfInterrupt: ["Interrupted"],
  interruptQueued: ["Interrupted"],
  interruptRunning: ["Interrupted"],
  foreverWithSafePoint: ["Interrupted"],
  throwingObserver: ["Completed"],
  // Obsolete when a worker reaches it after its (zero) deadline; a worker idle at that very moment may start it first.
  obsolete: ["Obsolete", "Completed"]
}

// ---------------------------------------------------------------- mixed faults

const mixedFaults = (size: Scenario.Size, checks: Checks) =>
  Effect.scoped(Effect.gen(function*() {
    const n = sizes[size]
    const prng = new Prng(0xfa17)
    const agenda = yield* Agenda.make({ workers: 4, capacity: n.tasklets })
    const toInterrupt: Array<Tasklet.TaskletHandle<unknown, unknown>> = []
    const ended = new Map<Kind, Record<string, number>>(kinds.map((k) => [k, {}]))
    let endedTotal = 0
    let observerThrows = 0
    const submitted = new Map<Kind, number>(kinds.map((k) => [k, 0]))
    const bodies = (kind: Kind, self: { handle?: Tasklet.TaskletHandle<unknown, unknown> }): Effect.Effect<unknown, unknown> => {
      switch (kind) {
        case "succeed":
        case "throwingObserver":
        case "obsolete":
          return Effect.succeed(kind)
        case "fail":
          return Effect.fail("planned failure")
        case "die":
          return Effect.die(new Error("planned defect"))
        case "throw":
          return Effect.sync(() => {
            throw new Error("planned throw")
          })
        case "dieInFinalizer":
          return Effect.ensuring(Effect.void, Effect.die(new Error("planned defect in a finalizer")))
        case "failingChild":
          return Effect.andThen(Effect.forkChild(Effect.fail("planned failure of a child fiber")), Effect.void)
        case "selfInterrupt":
          return Effect.interrupt
        case "interruptQueued":
          return Effect.void
        case "interruptRunning":
          return Effect.suspend(() => {
            toInterrupt.push(self.handle!)
            return Effect.never
          })
        case "foreverWithSafePoint":
          return Effect.suspend(() => {
            toInterrupt.push(self.handle!)
            return Effect.forever(Effect.andThen(Effect.yieldNow, Agenda.safePoint))
          })
      }
    }
    // Interrupts running tasklets from outside, as soon as they say they run.
    const interrupter = yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* waitFor(() => toInterrupt.length > 0, "1 hour")
      for (const handle of toInterrupt.splice(0)) yield* handle.interruptFork
    })))
    for (let i = 0; i < n.tasklets; i++) {
      const kind = prng.pick(kinds)
      const self: { handle?: Tasklet.TaskletHandle<unknown, unknown> } = {}
      const handle = agenda.unsafeSubmit(bodies(kind, self), {
        priority: prng.pick(["High", "Normal", "Low"] as const),
        label: kind,
        ...(kind === "obsolete" ? { obsoleteAfter: 0 } : {})
      })
      if (!("id" in handle)) {
        checks.add(`submission ${i} refused: ${handle.message}`)
        continue
      }
      self.handle = handle
      submitted.set(kind, submitted.get(kind)! + 1)
      if (kind === "throwingObserver") {
        handle.unsafeAddObserver(() => {
          observerThrows++
          throw new Error("planned throw in an outcome observer")
        })
      }
      handle.unsafeAddObserver(() => {
        const counts = ended.get(kind)!
        counts[handle.outcome!] = (counts[handle.outcome!] ?? 0) + 1
        endedTotal++
      })
      if (kind === "interruptQueued") yield* handle.interruptFork
      if (i % 500 === 499) yield* nextTurn
    }
    yield* Scenario.progress(NAME, `${n.tasklets} faulty tasklets submitted`)
    const drained = yield* Effect.timeout(agenda.whenIdle, "60 seconds").pipe(Effect.isSuccess)
    checks.that(drained, "the agenda did not drain the faulty tasklets within 60 seconds")
    yield* waitFor(() => endedTotal >= n.tasklets, "10 seconds")
    yield* Effect.sync(() => interrupter.interruptUnsafe())
    // The agenda still works after all that.
    const probe = yield* Effect.timeout(agenda.run(Effect.succeed("still working")), "10 seconds").pipe(
      Effect.orElseSucceed(() => "no answer")
    )
    checks.equal("a tasklet after the faults", probe, "still working")
    const stats = yield* agenda.stats
    const workers = yield* agenda.workers
    checks.that(stats.total.balanced, "agenda accounting does not add up")
    checks.equal("workers after the faults", workers.length, 4)
    checks.that(workers.every((w) => w.state === "Idle"), "a worker is not idle after the faults")
    let mismatched = 0
    const outcomes: Record<string, number> = {}
    for (const [kind, counts] of ended) {
      for (const [outcome, count] of Object.entries(counts)) {
        outcomes[`${kind}→${outcome}`] = count
        if (!expected[kind].includes(outcome as Tasklet.Outcome)) {
          mismatched += count
          checks.add(`${count} ${kind} tasklet(s) ended ${outcome}, expected ${expected[kind].join(" or ")}`)
        }
      }
    }
    const throwing = submitted.get("throwingObserver")!
    checks.equal("throwing observers called", observerThrows, throwing)
    return {
      sent: n.tasklets,
      arrived: endedTotal,
      lost: n.tasklets - endedTotal,
      mismatched,
      respawns: workers.reduce((acc, w) => acc + w.respawns, 0),
      outcomes,
      stats
    }
  }))

// ---------------------------------------------------------------- GC barrier under load

const gcBarrier = (size: Scenario.Size, checks: Checks) =>
  Effect.scoped(Effect.gen(function*() {
    const n = sizes[size]
    const agenda = yield* Agenda.make({ workers: n.concurrent })
    let started = 0
    let steps = 0
    let stop = false
    let collecting = false
    let codeDuringCollection = 0
    let collectorRuns = 0
    const looping = Effect.suspend(function step(): Effect.Effect<void> {
      steps++
      if (collecting) codeDuringCollection++
      if (stop) return Effect.void
      return Effect.andThen(Agenda.safePoint, Effect.suspend(step))
    })
    const handles = []
    for (let i = 0; i < n.concurrent; i++) {
      const handle = agenda.unsafeSubmit(Effect.andThen(Effect.sync(() => void started++), looping), { label: `loop#${i}` })
      if ("id" in handle) handles.push(handle)
    }
    const allRunning = yield* waitFor(() => started === n.concurrent, "30 seconds")
    checks.that(allRunning, `only ${started} of ${n.concurrent} tasklets started`)
    // The collector takes a while (several turns of Node's loop): any
    // tasklet not parked would run meanwhile and be counted.
    const collector = Effect.gen(function*() {
      collecting = true
      collectorRuns++
      for (let i = 0; i < 5; i++) yield* nextTurn
      if (gcAvailable()) (globalThis as unknown as { gc: () => void }).gc()
      collecting = false
    })
    const other = Effect.sync(() => void collectorRuns++)
    const requested = performance.now()
    // Three requests of one collector and one of another form one barrier: each collector runs once.
    const barrier = yield* Effect.all([agenda.requestGc(collector), agenda.requestGc(collector), agenda.requestGc(collector), agenda.requestGc(other)], {
      concurrency: "unbounded"
    }).pipe(Effect.timeout("60 seconds"), Effect.isSuccess)
    const barrierMillis = performance.now() - requested
    checks.that(barrier, "the GC barrier did not complete within 60 seconds")
    checks.equal("tasklet steps while the collector ran", codeDuringCollection, 0)
    checks.equal("collector runs for one barrier", collectorRuns, 2)
    // Every tasklet may already sit at its safe point when the barrier forms,
    // so progress is looked for once the barrier has let them go.
    const stepsAtRelease = steps
    const resumed = yield* waitFor(() => steps > stepsAtRelease, "30 seconds")
    checks.that(resumed, "the tasklets made no progress after the barrier")
    stop = true
    const drained = yield* Effect.timeout(agenda.whenIdle, "60 seconds").pipe(Effect.isSuccess)
    checks.that(drained, "the looping tasklets did not finish within 60 seconds")
    const stats = yield* agenda.stats
    checks.equal("looping tasklets completed", stats.total.completed, n.concurrent)
    checks.that(stats.total.balanced, "agenda accounting does not add up")
    return { sent: n.concurrent, arrived: stats.total.completed, barrierMillis, gcCycles: stats.gcCycles, steps }
  }))

// ---------------------------------------------------------------- exit with every worker stuck

const exitWhileStuck = (size: Scenario.Size, checks: Checks) =>
  Effect.scoped(Effect.gen(function*() {
    const n = sizes[size]
    const agenda = yield* Agenda.make({ workers: n.stuck, capacity: n.queuedBehindStuck })
    let running = 0
    const stuck = Effect.andThen(
      Effect.sync(() => void running++),
      Effect.forever(Effect.andThen(Effect.yieldNow, Agenda.safePoint))
    )
    for (let i = 0; i < n.stuck; i++) agenda.unsafeSubmit(stuck, { label: "stuck", priority: "High" })
    checks.that(yield* waitFor(() => running === n.stuck, "10 seconds"), "the stuck tasklets did not all start")
    let queued = 0
    for (let i = 0; i < n.queuedBehindStuck; i++) {
      if ("id" in agenda.unsafeSubmit(Effect.void, { priority: "Low" })) queued++
    }
    // A GC barrier still forms: the loops reach their safe points.
    const gc = yield* Effect.timeout(agenda.requestGc(Effect.void), "30 seconds").pipe(Effect.isSuccess)
    checks.that(gc, "a GC barrier with every worker in an infinite loop did not complete")
    const report = yield* Effect.timeout(agenda.exit, "30 seconds").pipe(Effect.option)
    if (report._tag === "None") {
      checks.add("exit did not finish within 30 seconds")
      return { sent: n.stuck + queued, arrived: 0, interrupted: 0, dropped: 0 }
    }
    checks.equal("interrupted by exit", report.value.interrupted, n.stuck)
    checks.equal("dropped by exit", report.value.dropped, queued)
    checks.that(report.value.stats.total.balanced, "agenda accounting does not add up after exit")
    const { dropped, interrupted } = report.value
    return { sent: n.stuck + queued, arrived: interrupted + dropped, interrupted, dropped }
  }))

/**
 * The scenario.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "failing, dying, interrupted, looping and obsolete tasklets each end in their outcome and the counts add up; a throwing observer harms nobody; a GC barrier parks 1,000 running tasklets at safe points; an agenda of infinite loops still exits",
  body: (size) =>
    Effect.gen(function*() {
      const checks = new Checks()
      const mixed = yield* mixedFaults(size, checks)
      yield* Scenario.progress(NAME, "faulty tasklets done; GC barrier under load")
      const gc = yield* gcBarrier(size, checks)
      yield* Scenario.progress(NAME, "GC barrier done; exit with every worker stuck")
      const stuck = yield* exitWhileStuck(size, checks)
      return {
        sent: mixed.sent + gc.sent + stuck.sent,
        arrived: mixed.arrived + gc.arrived + stuck.arrived,
        lost: mixed.lost + (gc.sent - gc.arrived) + (stuck.sent - stuck.arrived),
        violations: checks.list,
        figures: {
          faultyTasklets: mixed.sent,
          ...mixed.outcomes,
          outcomesNotAsExpected: mixed.mismatched,
          workerRespawns: mixed.respawns,
          failed: mixed.stats.total.failed,
          interrupted: mixed.stats.total.interrupted,
          obsolete: mixed.stats.total.obsolete,
          gcConcurrentTasklets: gc.sent,
          gcBarrierMs: Math.round(gc.barrierMillis),
          gcCycles: gc.gcCycles,
          gcGlobalCollect: gcAvailable() ? "yes" : "no (run with --expose-gc)",
          stuckInterruptedByExit: stuck.interrupted,
          droppedByExit: stuck.dropped
        }
      }
    })
})
