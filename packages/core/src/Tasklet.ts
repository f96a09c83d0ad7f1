/**
 * Tasklets: units of work submitted to the agenda.
 *
 * A tasklet is an Effect with a priority, a label (the explanation shown in
 * dumps and logs), an id and metadata. `Agenda.submit` turns an Effect into a
 * tasklet and returns its {@link TaskletHandle}.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as internal from "./internal/syncEffect.js"
import type { DurationInput } from "./Options.js"
import { Priority } from "./Priority.js"

/**
 * How a tasklet ended. Every submitted tasklet ends in exactly one outcome.
 *
 * - `Completed`: its effect succeeded.
 * - `Failed`: its effect failed or died (a defect); the worker lives on.
 * - `Interrupted`: it was interrupted, queued or running.
 * - `Dropped`: the agenda exited before it started.
 * - `Obsolete`: it was not started before its obsolescence deadline.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = "Completed" | "Failed" | "Interrupted" | "Dropped" | "Obsolete"

/**
 * Schema for {@link Outcome}.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Outcome: Schema.Literals<readonly ["Completed", "Failed", "Interrupted", "Dropped", "Obsolete"]> = Schema
  .Literals(["Completed", "Failed", "Interrupted", "Dropped", "Obsolete"])

/**
 * Where a tasklet is in its life.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "Queued" | "Running" | "Done"

/**
 * Schema for {@link Status}.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Status: Schema.Literals<readonly ["Queued", "Running", "Done"]> = Schema.Literals(["Queued", "Running", "Done"])

/**
 * The agenda exited (`Agenda.exit`, or a quit whose deadline passed) before the
 * tasklet started. It never ran.
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskletDropped extends Schema.TaggedError<TaskletDropped>()("TaskletDropped", {
  id: Schema.Number,
  label: Schema.String
}) {
  override get message(): string {
    return `tasklet #${this.id} (${this.label}) was dropped: the agenda exited before it started; use quit instead of exit to let queued tasklets finish`
  }
}

/**
 * The tasklet was still queued at its obsolescence deadline and was discarded
 * without running.
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskletObsolete extends Schema.TaggedError<TaskletObsolete>()("TaskletObsolete", {
  id: Schema.Number,
  label: Schema.String,
  deadline: Schema.Number
}) {
  override get message(): string {
    return `tasklet #${this.id} (${this.label}) became obsolete: not started by its deadline (clock ${this.deadline} ms); raise obsoleteAfter, add workers or lower the load`
  }
}

/**
 * Options for a submitted tasklet.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Queue to join; default `Normal`. */
  readonly priority?: Priority
  /** The explanation shown in dumps and logs; default `tasklet#<id>`. */
  readonly label?: string
  /**
   * Drop the tasklet as obsolete if it has not started within this duration
   * of submission; `"infinity"`: never. Negative, NaN or malformed values fail
   * the submission with `InvalidOptions` (see `Options.TaskletOptions`).
   */
  readonly obsoleteAfter?: DurationInput
}

/**
 * A read-only view of a submitted tasklet, as shown in dumps.
 *
 * @since 0.1.0
 * @category models
 */
export interface Info {
  readonly id: number
  readonly label: string
  readonly priority: Priority
  readonly status: Status
  /** Set once the tasklet is `Done`. */
  readonly outcome: Outcome | undefined
  /** Clock time (ms) of submission. */
  readonly createdAt: number
  /** Clock time (ms) the tasklet started, if it did. */
  readonly startedAt: number | undefined
  /** How many times a worker started it (0 or 1: the agenda does not retry). */
  readonly attempts: number
  /** Clock time (ms) after which, if not started, it is dropped as obsolete. */
  readonly obsoleteAt: number | undefined
}

/**
 * Schema of {@link Info}, for dumps and JSON output. Fields that are
 * `undefined` may be absent, as `JSON.stringify` leaves them out.
 *
 * @since 0.1.0
 * @category schemas
 */
export const InfoSchema = Schema.Struct({
  id: Schema.Number,
  label: Schema.String,
  priority: Priority,
  status: Status,
  outcome: Schema.optional(Outcome),
  createdAt: Schema.Number,
  startedAt: Schema.optional(Schema.Number),
  attempts: Schema.Number,
  obsoleteAt: Schema.optional(Schema.Number)
})

/**
 * A synchronous tasklet: an Effect that calls `thunk` and succeeds with its
 * result. A throw becomes a defect, as in `Effect.sync`.
 *
 * It is an ordinary Effect (it can be composed, run with `Effect.runSync`,
 * or submitted anywhere an Effect goes), and the agenda's workers and the
 * event loop's inline handlers recognise it and call `thunk` right away,
 * without a fiber step. Prefer it to `Effect.sync` for small tasklets and
 * handlers: the agenda also takes `Effect.sync` inline, but only while the
 * installed Effect lays its internals out as the agenda expects, which this
 * constructor does not depend on. Composing it (`pipe(Effect.map(...))`)
 * gives a regular effect, run on a fiber of its own.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda, Tasklet } from "@refpersys/core"
 *
 * let ticks = 0
 * const tick = Tasklet.sync(() => ++ticks)
 *
 * const program = Effect.gen(function*() {
 *   const handle = yield* Agenda.submit(tick, { priority: "High" })
 *   return yield* handle.join // 1
 * }).pipe(Effect.provide(Agenda.layer()))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const sync: <A>(thunk: () => A) => Effect.Effect<A> = internal.makeSync

/**
 * The errors a handle can report besides the tasklet's own.
 *
 * @since 0.1.0
 * @category models
 */
export type AgendaOutcomeError = TaskletDropped | TaskletObsolete

/**
 * A submitted tasklet: await its `Exit`, or interrupt it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 *
 * const program = Effect.gen(function*() {
 *   const handle = yield* Agenda.submit(Effect.succeed(42), { priority: "High", label: "answer" })
 *   return yield* handle.join // 42
 * }).pipe(Effect.provide(Agenda.layer()))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskletHandle<A, E> extends Info {
  /** Waits for the outcome and returns it as an `Exit`. Never fails. */
  readonly await: Effect.Effect<Exit.Exit<A, E | AgendaOutcomeError>>
  /** Waits for the outcome and succeeds or fails with it. */
  readonly join: Effect.Effect<A, E | AgendaOutcomeError>
  /** The outcome, if the tasklet is done. */
  readonly poll: Effect.Effect<Option.Option<Exit.Exit<A, E | AgendaOutcomeError>>>
  /**
   * Interrupts the tasklet and waits until it has ended. A queued tasklet is
   * removed from its queue; a running one has its fiber interrupted (its
   * finalizers run), and its worker goes on. A tasklet that already ended
   * keeps its outcome.
   */
  readonly interrupt: Effect.Effect<Exit.Exit<A, E | AgendaOutcomeError>>
  /** Requests interruption without waiting. */
  readonly interruptFork: Effect.Effect<void>
  /**
   * Calls `f` once with the outcome (at once if already done). Returns a
   * function that removes `f`. An `f` that throws when the tasklet ends is
   * logged as an error, and the other observers are still called.
   */
  readonly unsafeAddObserver: (f: (exit: Exit.Exit<A, E | AgendaOutcomeError>) => void) => () => void
  /** A snapshot of {@link Info}. */
  readonly info: () => Info
}
