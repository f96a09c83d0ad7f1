/**
 * Statistics of an agenda, as a Schema-described snapshot.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { WorkerState } from "./WorkerState.js"

/**
 * Summary of a duration histogram, in milliseconds. The full histograms are
 * Effect `Metric`s (see `Agenda.metrics`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const DurationSummary = Schema.Struct({
  count: Schema.Number,
  min: Schema.Number,
  max: Schema.Number,
  mean: Schema.Number
})

/**
 * Counters of one priority level.
 *
 * Invariant: `submitted = completed + failed + interrupted + dropped + obsolete + queued + running`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class PriorityStats extends Schema.Class<PriorityStats>("PriorityStats")({
  submitted: Schema.Number,
  started: Schema.Number,
  completed: Schema.Number,
  failed: Schema.Number,
  interrupted: Schema.Number,
  dropped: Schema.Number,
  obsolete: Schema.Number,
  /** Tasklets waiting in the queue now. */
  queued: Schema.Number,
  /** Tasklets running now. */
  running: Schema.Number,
  /** Submitters blocked waiting for room now (not yet submitted). */
  blockedSubmitters: Schema.Number,
  /** Time from submission to start. */
  waitTime: DurationSummary,
  /** Time from start to end. */
  runTime: DurationSummary
}) {
  /** Tasklets that ended, in any outcome. */
  get ended(): number {
    return this.completed + this.failed + this.interrupted + this.dropped + this.obsolete
  }
  /** `true` when the accounting invariant holds. */
  get balanced(): boolean {
    return this.submitted === this.ended + this.queued + this.running
  }
}

/**
 * The agenda's life: accepting work, draining for a quit, or stopped.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Lifecycle: Schema.Literals<readonly ["running", "quitting", "stopped"]> = Schema.Literals([
  "running",
  "quitting",
  "stopped"
])

/**
 * A snapshot of an agenda.
 *
 * @since 0.1.0
 * @category schemas
 */
export class AgendaStats extends Schema.Class<AgendaStats>("AgendaStats")({
  name: Schema.String,
  state: Lifecycle,
  byPriority: Schema.Struct({ High: PriorityStats, Normal: PriorityStats, Low: PriorityStats }),
  total: PriorityStats,
  workers: Schema.Array(WorkerState),
  /** Completed garbage-collection barriers. */
  gcCycles: Schema.Number,
  /** Barriers given up when `gcTimeout` passed (see `GcTimeout`). */
  gcTimeouts: Schema.Number.pipe(
    Schema.withConstructorDefault(Effect.succeed(0)),
    Schema.optionalKey,
    Schema.withDecodingDefaultKey(Effect.succeed(0))
  ),
  /** Lower-priority picks forced by aging. */
  agingPicks: Schema.Number
}) {}

/**
 * What a quit or an exit did.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ShutdownReport extends Schema.Class<ShutdownReport>("ShutdownReport")({
  mode: Schema.Literals(["quit", "exit"]),
  /** `true` when a quit hit its deadline and fell back to exit. */
  timedOut: Schema.Boolean,
  /** Queued tasklets dropped by this shutdown. */
  dropped: Schema.Number,
  /** Running tasklets interrupted by this shutdown (including the abandoned ones). */
  interrupted: Schema.Number,
  /**
   * Interrupted tasklets that had not ended `abandonAfter` later (e.g.
   * `Effect.never` inside `Effect.uninterruptible`): settled as `Interrupted`
   * without waiting any longer; their fibers were left to end on their own.
   */
  abandoned: Schema.Number.pipe(
    Schema.withConstructorDefault(Effect.succeed(0)),
    Schema.optionalKey,
    Schema.withDecodingDefaultKey(Effect.succeed(0))
  ),
  stats: AgendaStats
}) {}
