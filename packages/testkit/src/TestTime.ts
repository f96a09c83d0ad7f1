/**
 * `TestClock` helpers that are safe under the `PriorityScheduler`.
 *
 * `TestClock.adjust` only wakes fibers that are already sleeping. A fiber that
 * is still busy when the clock moves misses the wake-up and later sleeps from
 * the new time, so the test waits for ever. Under a strict priority scheduler
 * a low-priority fiber is the one most likely to be late. The helpers here
 * first wait until the expected number of sleeps is pending on the
 * `TestClock`, and only then move the clock. While waiting they alternate two
 * kinds of yield: an `Effect.yieldNow` at the `Low` level of the
 * `PriorityScheduler` in context (`PriorityScheduler.withPriority`; a plain
 * `yieldNow` when there is none), so that busy fibers of every level on that
 * scheduler run first, and a turn of the event loop (`setImmediate`), so that
 * fibers on another scheduler, whose slices resume from `setImmediate`, and
 * I/O callbacks run too.
 *
 * **Effect 4.** `TestClock.adjust` now waits, after waking a sleeper, until
 * the fibers it woke stop running (those on the scheduler `it.effect`
 * installs, or on a `PriorityScheduler` that drains through it), but it
 * still misses a fiber that has not reached its sleep yet: hence these
 * helpers. Effect 4's `TestClock` has no `sleeps()`, so the helpers count
 * pending sleeps themselves, and no extra layer is needed inside `it.effect`:
 *
 * - In a plain `it.effect`, they read the pending sleeps of the `TestClock`
 *   that `it.effect` provides. That list is not public in Effect 4; the kit
 *   checks at load that it behaves as expected, and a test of the kit fails
 *   if an Effect upgrade changes it.
 * - With {@link layer} provided, they count the sleeps of the counting
 *   `TestClock` it installs, through public APIs only. Use it where the
 *   first way is not available (the helpers then die with a message saying
 *   to provide it) or for a `TestClock` of your own.
 *
 * Sleepers are counted across the whole `TestClock`: every pending sleep of
 * every fiber counts. A sleep stops counting as soon as it ends for any
 * reason: a fiber interrupted while sleeping is not counted any more (under
 * v3, `TestClock.sleeps()` kept its entry until the clock passed it).
 *
 * @since 0.1.0
 */
import { PriorityScheduler } from "@refpersys/core"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { TestClock } from "effect/testing"
import * as internal from "./internal/pendingSleeps.js"

/**
 * Options of {@link awaitSleepers}.
 *
 * @example
 * ```ts
 * import { TestTime } from "@refpersys/testkit"
 *
 * const options: TestTime.AwaitOptions = { maxYields: 50_000 }
 * const wait = TestTime.awaitSleepers(2, options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface AwaitOptions {
  /**
   * Yields to give up after; default 10,000. Yields alternate between a
   * lowest-priority `yieldNow` and an event-loop turn (see the module doc), so
   * this bounds how much work the awaited fibers may do before they sleep.
   */
  readonly maxYields?: number
}

/**
 * Options of {@link adjustWhenSleeping}.
 *
 * @example
 * ```ts
 * import { TestTime } from "@refpersys/testkit"
 *
 * const options: TestTime.AdjustOptions = { sleepers: 2, maxYields: 50_000 }
 * const step = TestTime.adjustWhenSleeping("1 second", options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface AdjustOptions extends AwaitOptions {
  /** Pending sleeps to wait for before adjusting; default 1. */
  readonly sleepers?: number
}

/**
 * Options of {@link advanceUntil}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const options: TestTime.AdvanceOptions = { sleepers: 1, maxSteps: 60 }
 * const advance = TestTime.advanceUntil(Effect.succeed(true), "1 second", options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface AdvanceOptions extends AdjustOptions {
  /** Steps to give up after; default 1,000. */
  readonly maxSteps?: number
}

/**
 * The expected sleepers did not show up on the `TestClock` in time.
 *
 * Raised after `maxYields` yields; `seen` is the last count observed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const seen = TestTime.awaitSleepers(1, { maxYields: 10 }).pipe(
 *   Effect.catchTag("SleepersNotReached", (e) => Effect.succeed(e.seen))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class SleepersNotReached extends Schema.TaggedError<SleepersNotReached>()("SleepersNotReached", {
  expected: Schema.Number,
  seen: Schema.Number,
  yields: Schema.Number
}) {
  override get message(): string {
    return `expected ${this.expected} pending TestClock sleep(s) but saw ${this.seen} after ${this.yields} yields: ` +
      `the fiber never reached its sleep; check it is not blocked (on a lock, a queue, a Deferred or ` +
      `higher-priority work that never ends), or raise maxYields`
  }
}

/**
 * {@link advanceUntil} took `maxSteps` steps and the condition still did not hold.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const steps = TestTime.advanceUntil(Effect.succeed(false), "1 second", { maxSteps: 3 }).pipe(
 *   Effect.catchTag("ConditionNotReached", (e) => Effect.succeed(e.steps))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ConditionNotReached extends Schema.TaggedError<ConditionNotReached>()("ConditionNotReached", {
  steps: Schema.Number,
  stepMillis: Schema.Number
}) {
  override get message(): string {
    return `the condition still did not hold after ${this.steps} steps of ${this.stepMillis} ms of TestClock time; ` +
      `check that the condition can become true and that the step reaches the sleepers' deadlines, or raise maxSteps`
  }
}

const DEFAULT_MAX_YIELDS = 10_000
const DEFAULT_MAX_STEPS = 1_000

// At its own level a waiting test fiber would go back in ahead of
// low-priority fibers on a strict priority scheduler and starve the very
// fiber it is waiting for. The lowest level is the only one that is behind
// everything; outside a priority scheduler this is a plain yield.
const yieldLowest = PriorityScheduler.withPriority(Effect.yieldNow, "Low")

// A fiber yield only reaches the waiting fiber's own scheduler, and Effect's
// default scheduler answers a run of yields with microtasks: a priority
// scheduler elsewhere, which resumes its slices from `setImmediate`, would get
// about one slice per two thousand yields. `setImmediate` rather than
// `setTimeout(0)` because the latter waits at least a millisecond.
const eventLoopTurn = Effect.callback<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

// A negative duration would move a v4 TestClock backwards (v3 clamped it to
// zero); in a test that is a mistake to report.
const decodeDuration = (name: string, input: Duration.Input): Effect.Effect<Duration.Duration> =>
  Effect.suspend(() => {
    const duration = Duration.fromInput(input)
    if (duration._tag === "Some" && !Duration.isNegative(duration.value)) return Effect.succeed(duration.value)
    return Effect.die(new Error(`TestTime: ${name} must be a non-negative duration, got ${String(input)}`))
  })

// A NaN or fractional bound would make the loops below never give up.
const checkCount = (name: string, value: number): Effect.Effect<void> =>
  Number.isInteger(value) && value >= 0
    ? Effect.void
    : Effect.die(new Error(`TestTime: ${name} must be a non-negative integer, got ${String(value)}`))

/**
 * Yields until `done` holds (then `true`) or `count` sleeps are pending (then
 * `false`), checking before the first yield and after each one.
 */
const poll = <E, R>(
  count: number,
  maxYields: number,
  done: Effect.Effect<boolean, E, R>
): Effect.Effect<boolean, E | SleepersNotReached, R> =>
  Effect.gen(function*() {
    for (let yields = 0;; yields++) {
      if (yield* done) return true
      const seen = yield* internal.count
      if (seen >= count) return false
      if (yields >= maxYields) return yield* new SleepersNotReached({ expected: count, seen, yields })
      yield* yields % 2 === 0 ? yieldLowest : eventLoopTurn
    }
  })

const never = Effect.succeed(false)

const awaitCount = (name: string, count: number, options: AwaitOptions | undefined) =>
  Effect.suspend(() => {
    const maxYields = options?.maxYields ?? DEFAULT_MAX_YIELDS
    return checkCount(name, count).pipe(
      Effect.andThen(checkCount("maxYields", maxYields)),
      Effect.andThen(poll(count, maxYields, never)),
      Effect.asVoid
    )
  })

/**
 * Waits until `check` holds, yielding in between (a lowest-priority
 * `yieldNow`, then an event-loop turn, alternately) and never sleeping. Dies
 * with a message naming `what` after `maxYields` yields (default 100,000):
 * in a test, a condition that never holds is a failure to report, not an
 * error to handle.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const waitForQuit = TestTime.eventually(
 *   Effect.map(Agenda.stats, (s) => s.state === "quitting"),
 *   "the agenda is quitting"
 * )
 * ```
 *
 * @since 0.1.0
 * @category waiting
 */
export const eventually = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  what: string,
  options?: AwaitOptions
): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    const maxYields = options?.maxYields ?? 100_000
    for (let yields = 0; yields <= maxYields; yields++) {
      if (yield* check) return
      yield* yields % 2 === 0 ? yieldLowest : eventLoopTurn
    }
    return yield* Effect.die(new Error(`condition never held after ${maxYields} yields: ${what}`))
  })

/**
 * Waits until the `TestClock` has at least `count` pending sleeps.
 *
 * Does not move the clock. Checks before the first yield and after each
 * one, alternating a lowest-priority `yieldNow` with an event-loop turn (see
 * the module doc); fails with {@link SleepersNotReached} after `maxYields`
 * yields. Dies if `count` or `maxYields` is not a non-negative integer, or
 * if the pending sleeps cannot be counted (see the module doc).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestClock } from "effect/testing"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const test = Effect.gen(function*() {
 *   yield* Effect.forkChild(Effect.sleep("1 second"))
 *   yield* TestTime.awaitSleepers(1)
 *   yield* TestClock.adjust("1 second")
 * })
 * ```
 *
 * @since 0.1.0
 * @category waiting
 */
export const awaitSleepers = (count: number, options?: AwaitOptions): Effect.Effect<void, SleepersNotReached> =>
  awaitCount("count", count, options)

/**
 * Waits for pending sleeps, then moves the `TestClock` forward by `duration`.
 *
 * Waits for `options.sleepers` sleeps (default 1) as {@link awaitSleepers}
 * does, then calls `TestClock.adjust(duration)`; the clock moves by exactly
 * `duration`. Dies if `duration` is negative.
 *
 * @example
 * ```ts
 * import { Effect, Fiber } from "effect"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const test = Effect.gen(function*() {
 *   const fiber = yield* Effect.forkChild(Effect.andThen(Effect.yieldNow, Effect.sleep("1 second")))
 *   yield* TestTime.adjustWhenSleeping("1 second")
 *   yield* Fiber.join(fiber)
 * })
 * ```
 *
 * @since 0.1.0
 * @category adjusting
 */
export const adjustWhenSleeping = (
  duration: Duration.Input,
  options?: AdjustOptions
): Effect.Effect<void, SleepersNotReached> =>
  Effect.flatMap(
    decodeDuration("duration", duration),
    (decoded) => Effect.andThen(awaitCount("sleepers", options?.sleepers ?? 1, options), TestClock.adjust(decoded))
  )

/**
 * Moves the `TestClock` by `step` at a time until `condition` holds.
 *
 * Each step first waits for `options.sleepers` pending sleeps (default 1),
 * with `maxYields` bounding each step's wait. Succeeds with the number of
 * steps taken. The condition is checked before
 * every yield, so a woken fiber that makes it true before sleeping again stops
 * the advance without an extra step. Fails with {@link ConditionNotReached}
 * after `maxSteps` steps, or {@link SleepersNotReached} if a step's sleepers
 * never show up. Dies if `step` is negative.
 *
 * @example
 * ```ts
 * import { Effect, Ref, Schedule } from "effect"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const test = Effect.gen(function*() {
 *   const ticks = yield* Ref.make(0)
 *   yield* Effect.forkChild(Effect.repeat(Ref.update(ticks, (n) => n + 1), Schedule.spaced("1 minute")))
 *   const steps = yield* TestTime.advanceUntil(Effect.map(Ref.get(ticks), (n) => n >= 3), "1 minute")
 *   // steps === 2: the first tick runs at once
 * })
 * ```
 *
 * @since 0.1.0
 * @category adjusting
 */
export const advanceUntil = <E, R>(
  condition: Effect.Effect<boolean, E, R>,
  step: Duration.Input,
  options?: AdvanceOptions
): Effect.Effect<number, E | SleepersNotReached | ConditionNotReached, R> =>
  Effect.suspend(() => {
    const sleepers = options?.sleepers ?? 1
    const maxYields = options?.maxYields ?? DEFAULT_MAX_YIELDS
    const maxSteps = options?.maxSteps ?? DEFAULT_MAX_STEPS
    return checkCount("sleepers", sleepers).pipe(
      Effect.andThen(checkCount("maxYields", maxYields)),
      Effect.andThen(checkCount("maxSteps", maxSteps)),
      Effect.andThen(decodeDuration("step", step)),
      Effect.flatMap((decoded) =>
        Effect.gen(function*() {
          const stepMillis = Duration.toMillis(decoded)
          for (let steps = 0;; steps++) {
            if (yield* poll(sleepers, maxYields, condition)) return steps
            if (steps >= maxSteps) return yield* new ConditionNotReached({ steps, stepMillis })
            yield* TestClock.adjust(decoded)
          }
        })
      )
    )
  })

/**
 * The deadlines (in `TestClock` milliseconds) of the sleeps pending on the
 * `TestClock` in context, earliest first: what `TestClock.sleeps()` showed
 * in Effect 3. A sleep leaves the list as soon as it ends, woken or
 * interrupted. Needs no layer inside `it.effect` (see the module doc); dies
 * if the pending sleeps cannot be counted.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const test = Effect.gen(function*() {
 *   yield* Effect.forkChild(Effect.sleep("1 second"))
 *   yield* TestTime.awaitSleepers(1)
 *   return yield* TestTime.pendingSleeps // [1000]
 * })
 * ```
 *
 * @since 0.1.0
 * @category waiting
 */
export const pendingSleeps: Effect.Effect<ReadonlyArray<number>> = internal.deadlines

/**
 * A `TestClock` layer whose clock counts its own pending sleeps through
 * public APIs only: `TestClock.layer(options)` with its `Clock` wrapped.
 *
 * **Not needed in a plain `it.effect`**, where the helpers count the sleeps
 * of the `TestClock` that `it.effect` provides. Provide it when they die
 * saying it is needed (an Effect whose `TestClock` they cannot read), or to
 * choose the `TestClock` options. It replaces the `TestClock` of `it.effect`
 * for the effect it is provided to, so provide it around the whole test
 * body: fibers forked outside it sleep on the other clock and are not seen.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const test = Effect.gen(function*() {
 *   yield* Effect.forkChild(Effect.sleep("1 second"))
 *   yield* TestTime.adjustWhenSleeping("1 second")
 * }).pipe(Effect.provide(TestTime.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: TestClock.TestClock.Options): Layer.Layer<never> =>
  Layer.effectContext(
    Effect.map(Layer.build(TestClock.layer(options)), (context) => {
      const clock = Context.get(context, Clock.Clock) as TestClock.TestClock
      return Context.add(context as Context.Context<never>, Clock.Clock, internal.counting(clock))
    })
  )

/**
 * A live `Clock` that can be moved forward: it reads the wall clock plus an
 * offset, and sleeps for real. For code on a real platform that must see a
 * far moment come (a timer 25 days away) without waiting for it: acquire the
 * timer under this clock (`Effect.provideService(effect, Clock.Clock, clock)`),
 * then `shift` it. A sleeper notices the move when its current sleep ends,
 * so pair it with a short sleep chunk (a platform's `timerChunkMillis`).
 * `reads` and `sleeps` count the readings of the clock and the sleeps begun
 * on it, so that a test can wait until the code under test has looked at the
 * clock (and gone to sleep) before moving it. The shift moves the wall time
 * and the monotonic time alike.
 *
 * @example
 * ```ts
 * import { Clock, Effect } from "effect"
 * import { TestTime } from "@refpersys/testkit"
 *
 * const shifted = TestTime.shiftedClock()
 * shifted.shift(25 * 86_400_000)
 * const later = Effect.provideService(Clock.currentTimeMillis, Clock.Clock, shifted.clock)
 * ```
 *
 * @since 0.1.0
 * @category clocks
 */
export const shiftedClock = (): {
  readonly clock: Clock.Clock
  readonly shift: (millis: number) => void
  readonly reads: () => number
  readonly sleeps: () => number
} => {
  // A fresh live clock: the default of the `Clock` reference.
  const live = Clock.Clock.defaultValue()
  let offset = 0
  let reads = 0
  let sleeps = 0
  const offsetNanos = () => BigInt(Math.round(offset)) * BigInt(1_000_000)
  const millis = () => {
    reads++
    return live.currentTimeMillisUnsafe() + offset
  }
  const nanos = () => {
    reads++
    return live.currentTimeNanosUnsafe() + offsetNanos()
  }
  const monotonic = () => {
    reads++
    return live.monotonicTimeNanosUnsafe() + offsetNanos()
  }
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: millis,
    currentTimeMillis: Effect.sync(millis),
    currentTimeNanosUnsafe: nanos,
    currentTimeNanos: Effect.sync(nanos),
    monotonicTimeNanosUnsafe: monotonic,
    monotonicTimeNanos: Effect.sync(monotonic),
    sleep: (duration) =>
      Effect.suspend(() => {
        sleeps++
        return live.sleep(duration)
      })
  }
  return {
    clock,
    shift: (by) => {
      offset += by
    },
    reads: () => reads,
    sleeps: () => sleeps
  }
}
