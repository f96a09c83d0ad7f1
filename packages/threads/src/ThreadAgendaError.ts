/**
 * Typed errors of thread tasklets. The agenda errors shared with the core
 * agenda (`AgendaClosed`, `AgendaFull`, `InvalidOptions`) come from
 * `@refpersys/core`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * Where a value failed to cross the thread boundary.
 *
 * - `encodeArgs`: the arguments did not encode on the submitting side (the
 *   tasklet was not submitted).
 * - `decodeArgs`: the thread could not decode the arguments.
 * - `encodeSuccess` / `encodeFailure`: the thread could not encode the result
 *   or the typed error.
 * - `decodeSuccess` / `decodeFailure`: the main thread could not decode them.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CodecStage = Schema.Literals([
  "encodeArgs",
  "decodeArgs",
  "encodeSuccess",
  "encodeFailure",
  "decodeSuccess",
  "decodeFailure"
])

/**
 * @since 0.1.0
 * @category models
 */
export type CodecStage = typeof CodecStage.Type

/**
 * A value did not fit its task's Schema on one side of the thread boundary.
 *
 * @example
 * ```ts
 * import { ThreadAgendaError } from "@refpersys/threads"
 *
 * const error = new ThreadAgendaError.TaskCodecError({ task: "fib", stage: "encodeArgs", detail: "Expected number" })
 * error.message // "task fib: encodeArgs failed: Expected number; ..."
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskCodecError extends Schema.TaggedError<TaskCodecError>()("TaskCodecError", {
  /** The task's export name. */
  task: Schema.String,
  stage: CodecStage,
  /** The Schema's parse error, formatted, or what could not be cloned. */
  detail: Schema.String,
  /**
   * Set when the value passed its Schema but cannot be structured-cloned to
   * the other thread (a function, a Symbol, ...): where it sits in the
   * encoded value, e.g. `nested[1].callback` (`""` for the value itself).
   */
  path: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `task ${this.task}: ${this.stage} failed: ${this.detail}; ` + (this.path === undefined
      ? "make the value match the task's Schema, or widen the Schema"
      : "give that part a Schema that encodes it to plain data (Schema.Any and Schema.Unknown pass it through unchanged, " +
        "and threads exchange values with structured-clone)")
  }
}

/**
 * A worker thread could not load a task: the module failed to import, the
 * export is missing, or it is not a `ThreadTask` implementation.
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskLoadError extends Schema.TaggedError<TaskLoadError>()("TaskLoadError", {
  module: Schema.String,
  export: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `cannot load task ${this.export} from ${this.module}: ${this.detail}; ` +
      "export ThreadTask.implement(...) under that name from a module the worker can import (a file URL or absolute path)"
  }
}

/**
 * The worker thread running the tasklet died (it called `process.exit`,
 * threw an uncaught exception, or ran out of memory). The thread was
 * replaced; tasklets queued on it were given to other threads.
 *
 * @since 0.1.0
 * @category errors
 */
export class ThreadCrashed extends Schema.TaggedError<ThreadCrashed>()("ThreadCrashed", {
  /** The thread's id (its index in the pool). */
  thread: Schema.Number,
  id: Schema.Number,
  label: Schema.String,
  /** Why the thread died, as the runtime reported it. */
  detail: Schema.String
}) {
  override get message(): string {
    return `tasklet #${this.id} (${this.label}) was running on thread ${this.thread}, which died: ${this.detail}; ` +
      "the thread was replaced; fix the crash or raise resourceLimits if it ran out of memory"
  }
}

/**
 * The errors a thread tasklet can end with besides its own typed error.
 *
 * @since 0.1.0
 * @category models
 */
export type ThreadTaskError = TaskCodecError | TaskLoadError | ThreadCrashed
