/**
 * Timeouts: one-shot and periodic timed effects on top of the platform's one
 * timer (the original runtime's `TimeoutManager`).
 *
 * Pending timeouts sit in a binary min-heap keyed by deadline and insertion
 * order, so timeouts due at the same millisecond fire in the order they were
 * scheduled. One driver fiber keeps the platform timer armed to the earliest
 * deadline; each time it goes off, the driver reads the `Clock` and fires
 * every timeout that is due, earliest first.
 *
 * **Periodic timeouts** are fixed-rate: the k-th deadline of `every(interval)`
 * started at `t` is `t + k * interval`, however late the firings ran, so they
 * never drift. When the loop is late by more than one interval, the timeout
 * fires once and the ticks it skipped are counted in `missed` (on the handle,
 * in the `TimerFired` event and in the stats) instead of firing in a burst.
 *
 * Deadlines are milliseconds on the program's `Clock`, so tests drive
 * timeouts with `TestClock`.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { InvalidOptions } from "./AgendaError.js"
import type { TimerFired } from "./Event.js"
import * as internal from "./internal/timeouts.js"
import { Platform } from "./Platform.js"
import type { PlatformError } from "./Platform.js"

/**
 * A snapshot of one pending timeout, for dumps.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TimeoutInfo = Schema.Struct({
  id: Schema.Number,
  label: Schema.String,
  /** The next deadline, in `Clock` milliseconds. */
  deadline: Schema.Number,
  /**
   * The period in milliseconds of a periodic timeout. Optional in the
   * encoded form, so a snapshot that went through JSON (which drops
   * `undefined`) decodes again.
   */
  interval: Schema.optional(Schema.Number),
  fired: Schema.Number,
  missed: Schema.Number
})

/**
 * A snapshot of one pending timeout (the type of {@link TimeoutInfo}).
 *
 * @since 0.1.0
 * @category models
 */
export interface TimeoutInfo extends Schema.Schema.Type<typeof TimeoutInfo> {}

/**
 * Counters of a {@link Timeouts} instance.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TimeoutStats = Schema.Struct({
  /** Timeouts created by `after`, `at` and `every`. */
  scheduled: Schema.Number,
  /** Firings, counting each tick of a periodic timeout. */
  fired: Schema.Number,
  /** Successful cancels. */
  cancelled: Schema.Number,
  /** Periodic ticks skipped because the loop was late. */
  missedTicks: Schema.Number,
  /** Timeout effects that failed or died (default `onFire`), or `onFire` calls that died. */
  failures: Schema.Number,
  /** Timeouts waiting for their deadline. */
  pending: Schema.Number
})

/**
 * Counters of a {@link Timeouts} instance (the type of {@link TimeoutStats}).
 *
 * @since 0.1.0
 * @category models
 */
export interface TimeoutStats extends Schema.Schema.Type<typeof TimeoutStats> {}

/**
 * A scheduled timeout. Its fields are live: they change as it fires.
 *
 * @since 0.1.0
 * @category models
 */
export interface TimeoutHandle {
  /** Unique within its {@link Timeouts} instance, counting from 1. */
  readonly id: number
  /** The label given to `after`/`at`/`every`, or `timeout#<id>`. */
  readonly label: string
  /** The next deadline (the last one, once a one-shot timeout fired), in `Clock` milliseconds. */
  readonly deadline: number
  /** The period in milliseconds of a periodic timeout. */
  readonly interval: number | undefined
  /** Times fired. */
  readonly fired: number
  /** Periodic ticks skipped because the loop was late. */
  readonly missed: number
  /**
   * Cancels the timeout: `true` if it was still pending, `false` if it had
   * already fired (one-shot) or been cancelled. Works from inside the
   * timeout's own effect, which stops a periodic timeout.
   */
  readonly cancel: Effect.Effect<boolean>
}

/**
 * Options of `after`, `at` and `every`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScheduleOptions {
  /** Name used in logs, events and dumps; default `timeout#<id>`. */
  readonly label?: string
}

/**
 * The timeouts service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Timeouts {
  /**
   * Runs `effect` once, `duration` from now. A zero duration fires at the
   * next opportunity. Fails with `InvalidOptions` for a negative, NaN or
   * infinite duration.
   */
  readonly after: (
    duration: Duration.Input,
    effect: Effect.Effect<void, unknown>,
    options?: ScheduleOptions
  ) => Effect.Effect<TimeoutHandle, InvalidOptions>
  /**
   * Runs `effect` once at an absolute deadline in `Clock` milliseconds; a
   * deadline already past fires at the next opportunity. Fails with
   * `InvalidOptions` for a non-finite deadline.
   */
  readonly at: (
    deadline: number,
    effect: Effect.Effect<void, unknown>,
    options?: ScheduleOptions
  ) => Effect.Effect<TimeoutHandle, InvalidOptions>
  /**
   * Runs `effect` every `interval`, first one interval from now, at fixed
   * rate (see the module doc). Fails with `InvalidOptions` unless the
   * interval is finite and positive.
   */
  readonly every: (
    interval: Duration.Input,
    effect: Effect.Effect<void, unknown>,
    options?: ScheduleOptions
  ) => Effect.Effect<TimeoutHandle, InvalidOptions>
  /**
   * The timeouts waiting for a deadline, by deadline then id: never cancelled
   * ones, nor one-shot ones the driver has taken for the firing under way.
   */
  readonly pending: Effect.Effect<ReadonlyArray<TimeoutInfo>>
  /** A snapshot of the counters. */
  readonly stats: Effect.Effect<TimeoutStats>
}

/**
 * The service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Timeouts: Context.Service<Timeouts, Timeouts> = Context.Service<Timeouts>("@refpersys/core/Timeouts")

/**
 * Options of {@link make} and {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Called for each firing in deadline order. Default: run `effect` inline,
   * logging (with the label) and counting failures. The EventLoop passes its
   * own to route firings through its event queue.
   */
  readonly onFire?: (event: TimerFired, effect: Effect.Effect<void, unknown>) => Effect.Effect<void>
}

const toService = (impl: internal.TimeoutsImpl): Timeouts => ({
  after: (duration, effect, options) =>
    Effect.suspend(() => {
      const ms = internal.decodeMillis(duration)
      if (ms === undefined) {
        return Effect.fail(
          new InvalidOptions({
            option: "duration",
            value: duration,
            expected: "a finite non-negative Duration (e.g. \"5 seconds\" or 5000)"
          })
        )
      }
      return impl.schedule(impl.now() + ms, undefined, 0, effect, options)
    }),
  at: (deadline, effect, options) => Effect.suspend(() => impl.schedule(deadline, undefined, 0, effect, options)),
  every: (interval, effect, options) =>
    Effect.suspend(() => {
      const ms = internal.decodeMillis(interval)
      if (ms === undefined || ms <= 0) {
        return Effect.fail(
          new InvalidOptions({
            option: "interval",
            value: interval,
            expected: "a finite positive Duration (e.g. \"1 second\" or 1000)"
          })
        )
      }
      const start = impl.now()
      return impl.schedule(start + ms, ms, start, effect, options)
    }),
  pending: Effect.sync(() => impl.pending()),
  stats: Effect.sync(() => impl.stats())
})

/**
 * Creates a {@link Timeouts} on the platform's timer. The timer and the
 * driver fiber live as long as the scope; timeouts still pending when it
 * closes never fire.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Timeouts } from "@refpersys/core"
 *
 * // Needs a Platform, e.g. from @refpersys/platform-linux or the test kit.
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const timeouts = yield* Timeouts.make()
 *   const once = yield* timeouts.after("2 seconds", Effect.log("ding"), { label: "ding" })
 *   const tick = yield* timeouts.every("1 second", Effect.log("tick"))
 *   yield* Effect.sleep("5 seconds")
 *   yield* tick.cancel
 *   return once.fired // 1
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Timeouts, PlatformError, Platform | Scope.Scope> =>
  Effect.gen(function*() {
    const platform = yield* Platform
    const timer = yield* platform.timer
    const clock = yield* Clock.Clock
    const lock = yield* Semaphore.make(1)
    const impl = new internal.TimeoutsImpl(timer, clock, lock, options.onFire)
    yield* Effect.addFinalizer(() => Effect.sync(() => impl.close()))
    // The driver is forked after the timer is acquired, so closing the scope
    // stops it before the timer is released.
    yield* Effect.forkScoped(Stream.runForEach(timer.fired, () => impl.onTimer))
    return toService(impl)
  })

/**
 * A layer providing {@link Timeouts}; see {@link Options}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Timeouts } from "@refpersys/core"
 *
 * const program = Effect.gen(function*() {
 *   const handle = yield* Timeouts.after("30 seconds", Effect.log("too slow"), { label: "watchdog" })
 *   // ... work ...
 *   yield* handle.cancel
 * })
 * // provide Timeouts.layer() and a Platform layer to run it
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Timeouts, PlatformError, Platform> =>
  Layer.effect(Timeouts, make(options))

/**
 * Schedules a one-shot timeout on the {@link Timeouts} in context (see
 * {@link Timeouts.after}). Services the effect needs are taken from the
 * caller's context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Timeouts } from "@refpersys/core"
 *
 * const watchdog = Timeouts.after("30 seconds", Effect.logWarning("no reply"), { label: "watchdog" })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const after = <R>(
  duration: Duration.Input,
  effect: Effect.Effect<void, unknown, R>,
  options?: ScheduleOptions
): Effect.Effect<TimeoutHandle, InvalidOptions, Timeouts | R> =>
  withService(effect, (timeouts, provided) => timeouts.after(duration, provided, options))

/**
 * Schedules a one-shot timeout at an absolute `Clock` deadline on the
 * {@link Timeouts} in context (see {@link Timeouts.at}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const at = <R>(
  deadline: number,
  effect: Effect.Effect<void, unknown, R>,
  options?: ScheduleOptions
): Effect.Effect<TimeoutHandle, InvalidOptions, Timeouts | R> =>
  withService(effect, (timeouts, provided) => timeouts.at(deadline, provided, options))

/**
 * Schedules a periodic timeout on the {@link Timeouts} in context (see
 * {@link Timeouts.every}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Timeouts } from "@refpersys/core"
 *
 * const heartbeat = Timeouts.every("1 second", Effect.log("alive"), { label: "heartbeat" })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const every = <R>(
  interval: Duration.Input,
  effect: Effect.Effect<void, unknown, R>,
  options?: ScheduleOptions
): Effect.Effect<TimeoutHandle, InvalidOptions, Timeouts | R> =>
  withService(effect, (timeouts, provided) => timeouts.every(interval, provided, options))

/**
 * The pending timeouts of the {@link Timeouts} in context, by deadline then id.
 *
 * @since 0.1.0
 * @category accessors
 */
export const pending: Effect.Effect<ReadonlyArray<TimeoutInfo>, never, Timeouts> = Effect.flatMap(
  Timeouts,
  (t) => t.pending
)

/**
 * The counters of the {@link Timeouts} in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats: Effect.Effect<TimeoutStats, never, Timeouts> = Effect.flatMap(Timeouts, (t) => t.stats)

const withService = <R>(
  effect: Effect.Effect<void, unknown, R>,
  f: (timeouts: Timeouts, provided: Effect.Effect<void, unknown>) => Effect.Effect<TimeoutHandle, InvalidOptions>
): Effect.Effect<TimeoutHandle, InvalidOptions, Timeouts | R> =>
  Effect.flatMap(
    Timeouts,
    (timeouts) => Effect.flatMap(Effect.context<R>(), (ctx) => f(timeouts, Effect.provide(effect, ctx)))
  )
