/**
 * A priority-aware Effect `Scheduler`.
 *
 * Effect 4 has no per-fiber priority: a fiber's `Scheduler` is a reference
 * in its context, and forked fibers inherit it. A priority scheduler is one
 * shared run-queue core with one FIFO per level (High, Normal, Low) and one
 * `Scheduler` object per level: a fiber runs at a level by having that
 * level's scheduler in its context (see {@link withPriority}). Among runnable
 * fibers, higher levels run first, in bounded slices so timers and I/O still
 * run.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Scheduler from "effect/Scheduler"
import { InvalidOptions } from "./AgendaError.js"
import * as internal from "./internal/priorityScheduler.js"
import * as Priority from "./Priority.js"

/**
 * Options of the scheduler.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Tasks run per slice before yielding to Node's event loop (default 256).
   * Smaller slices lower timer and I/O latency under load; larger ones raise
   * throughput.
   */
  readonly sliceSize?: number
  /**
   * Longest a slice runs, in milliseconds, give or take the task running when
   * it is reached (default 0.1); `Infinity` bounds slices by `sliceSize` only.
   */
  readonly sliceMillis?: number
  /**
   * The clock slices are timed with, in milliseconds (default
   * `performance.now`). Tests inject one to make the time bound
   * deterministic.
   */
  readonly now?: () => number
  /**
   * The scheduler the slices themselves are scheduled on (default: Effect's
   * default scheduler, which runs them from `setImmediate`). {@link layer}
   * uses the scheduler in context, so a `TestClock` sees the work.
   */
  readonly parent?: Scheduler.Scheduler
}

/**
 * The scheduler core, with counters useful in tests and dumps.
 *
 * @since 0.1.0
 * @category models
 */
export interface PriorityScheduler {
  /** The `Scheduler` of a level: fibers with it in their context run at that level. */
  readonly scheduler: (priority: Priority.Priority) => Scheduler.Scheduler
  /** Tasks waiting to run. */
  readonly pending: number
  /** Tasks run so far per level: `[high, normal, low]`. */
  readonly ran: ReadonlyArray<number>
  /** Slices that ended with work left, each followed by a new turn of Node's event loop. */
  readonly slicesCut: number
}

class PrioritySchedulerService implements PriorityScheduler {
  constructor(readonly core: internal.PrioritySchedulerImpl) {}
  scheduler(priority: Priority.Priority): Scheduler.Scheduler {
    return this.core.levels[Priority.toIndex(priority)]
  }
  get pending(): number {
    return this.core.pending
  }
  get ran(): ReadonlyArray<number> {
    return this.core.ran
  }
  get slicesCut(): number {
    return this.core.slicesCut
  }
}

/**
 * Creates a scheduler. Install one of its levels with {@link layer} (all of
 * the program at `Normal`), `Effect.provideService(effect,
 * Scheduler.Scheduler, s.scheduler("High"))` or `Effect.runFork(effect, {
 * scheduler })`. Throws `InvalidOptions` for a `sliceSize` that is not a
 * positive integer or a `sliceMillis` that is not positive.
 *
 * @example
 * ```ts
 * import { Effect, Scheduler } from "effect"
 * import { PriorityScheduler } from "@refpersys/core"
 *
 * const scheduler = PriorityScheduler.make({ sliceSize: 128 })
 * const program = Effect.log("hi").pipe(
 *   Effect.provideService(Scheduler.Scheduler, scheduler.scheduler("High"))
 * )
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
  const sliceMillis = options.sliceMillis ?? internal.SLICE_MILLIS
  if (typeof sliceMillis !== "number" || !(sliceMillis > 0)) {
    throw new InvalidOptions({
      option: "sliceMillis",
      value: sliceMillis,
      expected: "a positive number of milliseconds such as 0.1, or Infinity"
    })
  }
  const now = options.now ?? (() => performance.now())
  if (typeof now !== "function") {
    throw new InvalidOptions({ option: "now", value: now, expected: "a function returning milliseconds" })
  }
  return new PrioritySchedulerService(
    new internal.PrioritySchedulerImpl({ sliceSize, sliceMillis, now, parent: usableParent(options.parent) })
  )
}

/** A parent that is one of our own levels, or synchronous, would never drain on its own. */
const usableParent = (parent: Scheduler.Scheduler | undefined): Scheduler.Scheduler | undefined =>
  parent === undefined || parent instanceof internal.LevelScheduler || parent.executionMode === "sync"
    ? undefined
    : parent

/**
 * The core behind a scheduler made by {@link make}, or `undefined`.
 *
 * @internal
 */
export const coreOf = (scheduler: PriorityScheduler | Scheduler.Scheduler): internal.PrioritySchedulerImpl | undefined =>
  scheduler instanceof PrioritySchedulerService
    ? scheduler.core
    : scheduler instanceof internal.LevelScheduler
    ? scheduler.core
    : undefined

/**
 * The service giving access to the installed scheduler (for dumps, tests and
 * {@link withPriority}).
 *
 * @since 0.1.0
 * @category tags
 */
export const PriorityScheduler: Context.Service<PriorityScheduler, PriorityScheduler> = Context.Service<
  PriorityScheduler
>("@refpersys/core/PriorityScheduler")

/**
 * The former name of the {@link PriorityScheduler} service.
 *
 * @since 0.1.0
 * @category tags
 */
export const CurrentPriorityScheduler: Context.Service<PriorityScheduler, PriorityScheduler> = PriorityScheduler

/**
 * A layer that provides a new priority scheduler as {@link PriorityScheduler}
 * and makes its `Normal` level the `Scheduler` of the program, so every
 * fiber runs on it. Its slices are scheduled on the scheduler that was in
 * context when the layer was built.
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
export const layer = (options: Options = {}): Layer.Layer<PriorityScheduler, InvalidOptions> =>
  Layer.effectContext(Effect.gen(function*() {
    const parent = options.parent ?? (yield* Scheduler.Scheduler)
    const scheduler = yield* Effect.try({
      try: () => make({ ...options, parent }),
      catch: (error) => error as InvalidOptions
    })
    return Context.make(PriorityScheduler, scheduler).pipe(
      Context.add(Scheduler.Scheduler, scheduler.scheduler("Normal"))
    )
  }))

/**
 * The priority scheduler in context: the one whose level is the fiber's
 * `Scheduler`, else the {@link PriorityScheduler} service, else none.
 */
const currentCore = (context: Context.Context<never>): internal.PrioritySchedulerImpl | undefined => {
  const current = Context.get(context, Scheduler.Scheduler)
  if (current instanceof internal.LevelScheduler) return current.core
  const service = Context.getOption(context, PriorityScheduler)
  return service._tag === "Some" ? coreOf(service.value) : undefined
}

/**
 * Runs an effect at a level of the priority scheduler in context (the one
 * whose level is the current `Scheduler`, or the {@link PriorityScheduler}
 * service); fibers it forks inherit the level. Without a priority scheduler
 * in context the effect runs unchanged. Replaces Effect 3's
 * `Effect.withSchedulingPriority`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PriorityScheduler } from "@refpersys/core"
 *
 * const urgent = Effect.log("now").pipe(PriorityScheduler.withPriority("High"))
 * const program = urgent.pipe(Effect.provide(PriorityScheduler.layer()))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withPriority: {
  (priority: Priority.Priority): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, priority: Priority.Priority): Effect.Effect<A, E, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, priority: Priority.Priority): Effect.Effect<A, E, R> =>
    Effect.withFiber((fiber) => {
      const core = currentCore(fiber.context)
      if (core === undefined) return self
      const level = core.levels[Priority.toIndex(priority)]
      return fiber.getRef(Scheduler.Scheduler) === level ? self : Effect.provideService(self, Scheduler.Scheduler, level)
    })
)
