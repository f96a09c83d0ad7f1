/**
 * Snapshots of agenda workers, as the original's `WorkerState`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { Priority } from "./Priority.js"

/**
 * What a worker is doing: waiting for work, running a tasklet, or parked for
 * a garbage-collection barrier.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Activity: Schema.Literals<readonly ["Idle", "Run", "GC"]> = Schema.Literals(["Idle", "Run", "GC"])

/**
 * @since 0.1.0
 * @category models
 */
export type Activity = typeof Activity.Type

/**
 * A snapshot of one worker.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 *
 * const program = Effect.gen(function*() {
 *   const workers = yield* Agenda.workers
 *   for (const w of workers) console.log(w.id, w.state, w.current?.label ?? "-")
 * }).pipe(Effect.provide(Agenda.layer({ workers: 2 })))
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export class WorkerState extends Schema.Class<WorkerState>("WorkerState")({
  /** Worker number, from 0. */
  id: Schema.Number,
  state: Activity,
  /** The running tasklet, if any (absent in JSON when none). */
  current: Schema.optional(Schema.Struct({
    id: Schema.Number,
    label: Schema.String,
    priority: Priority
  })),
  /** Tasklets this worker started. */
  started: Schema.Number,
  completed: Schema.Number,
  failed: Schema.Number,
  interrupted: Schema.Number,
  /** Times the worker parked for a GC barrier. */
  gcParks: Schema.Number,
  /** Running tasklets of this worker interrupted through their handle (in Effect 3 this replaced the worker's fiber). */
  respawns: Schema.Number
}) {}
