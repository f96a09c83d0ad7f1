/**
 * The worker thread a thread tasklet runs on, as a service its Effect can
 * use: the thread's id, a GC safe point, and the command channel of the
 * main thread's event loop.
 *
 * @since 0.1.0
 */
import type { PlatformError } from "@refpersys/core/Platform"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/**
 * The service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The thread's id: its index in the pool, kept when the thread is replaced. */
  readonly thread: number
  /**
   * Sends a command byte to the main thread's event loop. With the native
   * Linux platform the byte is written by this thread to the loop's
   * self-pipe (one-byte writes are atomic); otherwise it is relayed by the
   * main thread. Fails with `PlatformError`: `InvalidByte`, `Unsupported`
   * when the agenda was built without a `Platform`, `System` when the pipe is
   * full, `Closed` when the platform is closed.
   */
  readonly send: (byte: number) => Effect.Effect<void, PlatformError>
  /**
   * A GC safe point for long tasklets: when a barrier is forming, the thread
   * parks here until the collection has run. A no-op otherwise.
   */
  readonly safePoint: Effect.Effect<void>
}

/**
 * The service tag, provided to every thread tasklet.
 *
 * @since 0.1.0
 * @category tags
 */
export class ThreadContext extends Context.Service<ThreadContext, Service>()("@refpersys/threads/ThreadContext") {}

/**
 * Sends a command byte to the event loop of the main thread (see
 * {@link Service.send}).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import * as ThreadContext from "@refpersys/threads/ThreadContext"
 * import * as ThreadTask from "@refpersys/threads/ThreadTask"
 *
 * // Ask the event loop for a dump ("D") when the work is done.
 * export const report = ThreadTask.implement(
 *   ThreadTask.make({ module: import.meta.url, export: "report", args: Schema.Void, success: Schema.Void }),
 *   () => Effect.orDie(ThreadContext.send(68))
 * )
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const send = (byte: number): Effect.Effect<void, PlatformError, ThreadContext> =>
  Effect.flatMap(ThreadContext, (thread) => thread.send(byte))

/**
 * The id of the thread running the tasklet.
 *
 * @since 0.1.0
 * @category accessors
 */
export const thread: Effect.Effect<number, never, ThreadContext> = Effect.map(ThreadContext, (t) => t.thread)

/**
 * A GC safe point; a no-op outside a worker thread of a `ThreadAgenda`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as ThreadContext from "@refpersys/threads/ThreadContext"
 *
 * const longWork = Effect.forEach([1, 2, 3], (chunk) =>
 *   Effect.andThen(Effect.sync(() => chunk * 2), ThreadContext.safePoint))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const safePoint: Effect.Effect<void> = Effect.flatMap(
  Effect.serviceOption(ThreadContext),
  (thread) => Option.isSome(thread) ? thread.value.safePoint : Effect.void
)
