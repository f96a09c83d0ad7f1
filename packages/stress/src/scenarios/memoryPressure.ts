/**
 * Memory pressure: a million tasklets queued behind busy workers, then
 * drained. The heap must come back to where it was (within 10%) with the
 * agenda still alive: a queue that keeps its grown storage, or a tasklet
 * kept after it ended, shows here.
 *
 * Needs `global.gc` (`node --expose-gc`, as `npm run stress` runs); without
 * it, the scenario runs itself in a child process that has it.
 *
 * @since 0.1.0
 */
import { Agenda } from "@refpersys/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { Checks } from "../internal/checks.js"
import * as Child from "../internal/child.js"
import { gcAvailable, settledHeap, waitFor } from "../internal/probes.js"
import * as Scenario from "../Scenario.js"

const NAME = "memory-pressure"

const sizes = { small: { tasklets: 50_000 }, full: { tasklets: 1_000_000 } }

const WORKERS = 4
const TOLERANCE = 0.1
const MB = 1024 * 1024

const inProcess = (size: Scenario.Size) =>
  Effect.gen(function*() {
    const n = sizes[size].tasklets
    const checks = new Checks()
    const agenda = yield* Agenda.make({ workers: WORKERS, capacity: n })
    // Warm up: JIT, metric hooks, the scheduler's queues.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20_000; i++) agenda.unsafeSubmit(Effect.succeed(i), { priority: "Normal" })
      yield* agenda.whenIdle
    }
    const baseline = settledHeap()
    const gate = yield* Deferred.make<void>()
    let holding = 0
    for (let i = 0; i < WORKERS; i++) {
      agenda.unsafeSubmit(Effect.andThen(Effect.sync(() => void holding++), Deferred.await(gate)), { priority: "High" })
    }
    checks.that(yield* waitFor(() => holding === WORKERS, "10 seconds"), "the workers were not all held")
    const levels = ["High", "Normal", "Low"] as const
    let queued = 0
    const submitStart = performance.now()
    for (let i = 0; i < n; i++) {
      // A fresh effect per tasklet, as real submitters make them.
      const handle = agenda.unsafeSubmit(Effect.succeed(i), { priority: levels[i % 3] })
      if ("id" in handle) queued++
    }
    const submitMillis = performance.now() - submitStart
    checks.equal("tasklets queued", queued, n)
    const peak = settledHeap()
    yield* Scenario.progress(NAME, `${queued.toLocaleString()} tasklets queued, heap +${((peak - baseline) / MB).toFixed(1)} MB`)
    const drainStart = performance.now()
    yield* Deferred.succeed(gate, undefined)
    const drained = yield* Effect.timeout(agenda.whenIdle, "300 seconds").pipe(Effect.isSuccess)
    const drainMillis = performance.now() - drainStart
    checks.that(drained, "the queued tasklets did not drain within 300 seconds")
    const after = settledHeap()
    const ratio = after / baseline
    checks.that(
      Math.abs(ratio - 1) <= TOLERANCE,
      `heap after draining is ${(after / MB).toFixed(1)} MB against a baseline of ${(baseline / MB).toFixed(1)} MB (${((ratio - 1) * 100).toFixed(1)}%, allowed ±${TOLERANCE * 100}%)`
    )
    const stats = yield* agenda.stats
    const completed = stats.total.completed - 3 * 20_000 - WORKERS
    checks.equal("queued tasklets completed", completed, queued)
    checks.that(stats.total.balanced, "agenda accounting does not add up")
    return {
      sent: queued,
      arrived: completed,
      lost: Math.max(0, queued - completed),
      violations: checks.list,
      figures: {
        queued,
        baselineHeapMB: Number((baseline / MB).toFixed(2)),
        peakHeapMB: Number((peak / MB).toFixed(2)),
        bytesPerQueuedTasklet: Math.round((peak - baseline) / n),
        afterDrainHeapMB: Number((after / MB).toFixed(2)),
        afterDrainVsBaselinePercent: Number(((ratio - 1) * 100).toFixed(2)),
        submitMs: Math.round(submitMillis),
        drainMs: Math.round(drainMillis),
        drainPerSecond: Math.round(queued / (drainMillis / 1000))
      }
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
    "a million queued tasklets all run once drained, and the heap comes back to its baseline (±10%) with the agenda still alive",
  body: (size) =>
    gcAvailable()
      ? inProcess(size)
      : Child.scenarioInChild(NAME, size, { exposeGc: true, timeout: 600_000 })
})
