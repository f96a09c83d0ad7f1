/**
 * A priority-aware Effect `Scheduler`.
 *
 * Effect's default scheduler keeps one runner per fiber and ignores priority
 * between fibers. This one keeps one FIFO per level (High, Normal, Low, from
 * `Priority.toScheduling`) so that, among runnable fibers, higher-priority
 * continuations run first, in bounded slices so timers and I/O still run.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scheduler from "effect/Scheduler"
import { InvalidOptions } from "./AgendaError.js"
import * as internal from "./internal/priorityScheduler.js"

/**
 * Options of the scheduler.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Tasks run per slice before yielding to Node's event loop with
   * `setImmediate` (default 256). Smaller slices lower timer and I/O latency
   * under load; larger ones raise throughput.
   */
  readonly sliceSize?: number
  /**
   * Longest a slice runs, in milliseconds, give or take the task running when
   * it is reached (default 2); `Infinity` bounds slices by `sliceSize` only.
   */
  readonly sliceMillis?: number
  /**
   * The clock slices are timed with, in milliseconds (default
   * `performance.now`). Tests inject one to make the time bound
   * deterministic.
   */
  readonly now?: () => number
}

/**
 * The scheduler, with counters useful in tests and dumps.
 *
 * @since 0.1.0
 * @category models
 */
export interface PriorityScheduler extends Scheduler.Scheduler {
  /** Tasks waiting to run. */
  readonly pending: number
  /** Tasks run so far per level: `[high, normal, low]`. */
  readonly ran: ReadonlyArray<number>
  /** Slices that ended with work left, each followed by a `setImmediate`. */
  readonly slicesCut: number
}

/**
 * Creates a scheduler. Install it with {@link layer}, `Effect.withScheduler`
 * or `Runtime.runFork(..., { scheduler })`. Throws `InvalidOptions` for a
 * `sliceSize` that is not a positive integer or a `sliceMillis` that is not
 * positive.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PriorityScheduler } from "@refpersys/core"
 *
 * const scheduler = PriorityScheduler.make({ sliceSize: 128 })
 * const program = Effect.withScheduler(Effect.log("hi"), scheduler)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): PriorityScheduler => {
  const sliceSize = options.sliceSize ?? 256
  if (!Number.isInteger(sliceSize) || sliceSize < 1) {
    throw new InvalidOptions({ option: "sliceSize", value: sliceSize, expected: "a positive integer such as 256" })
  }
  const sliceMillis = options.sliceMillis ?? 2
  if (typeof sliceMillis !== "number" || !(sliceMillis > 0)) {
    throw new InvalidOptions({ option: "sliceMillis", value: sliceMillis, expected: "a positive number of milliseconds such as 2, or Infinity" })
  }
  const now = options.now ?? (() => performance.now())
  if (typeof now !== "function") {
    throw new InvalidOptions({ option: "now", value: now, expected: "a function returning milliseconds" })
  }
  return new internal.PrioritySchedulerImpl({ sliceSize, sliceMillis, now })
}

/**
 * A service giving access to the installed scheduler (for dumps and tests).
 *
 * @since 0.1.0
 * @category tags
 */
export class CurrentPriorityScheduler extends Context.Tag("@refpersys/core/PriorityScheduler")<
  CurrentPriorityScheduler,
  PriorityScheduler
>() {}

/**
 * A layer that makes every fiber of the program use a new priority scheduler
 * and provides it as {@link CurrentPriorityScheduler}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PriorityScheduler } from "@refpersys/core"
 *
 * Effect.runPromise(Effect.log("scheduled by priority").pipe(Effect.provide(PriorityScheduler.layer())))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<CurrentPriorityScheduler, InvalidOptions> =>
  Layer.unwrap(Effect.map(
    Effect.try({ try: () => make(options), catch: (error) => error as InvalidOptions }),
    (scheduler) => Layer.merge(Layer.setScheduler(scheduler), Layer.succeed(CurrentPriorityScheduler, scheduler))
  ))
