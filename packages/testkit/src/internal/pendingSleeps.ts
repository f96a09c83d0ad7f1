/**
 * Counting the pending sleeps of a `TestClock`.
 *
 * Effect 4's `TestClock` has no public list of its pending sleeps (v3 had
 * `TestClock.sleeps()`). Two sources serve instead, tried in this order:
 *
 * 1. A counting wrapper (`counting`, installed by `TestTime.layer`): a
 *    `TestClock` whose `sleep` records its deadline for as long as the sleep
 *    lasts, built from the public members of the clock it wraps only.
 * 2. The pending-sleep list of the `TestClock` implementation itself (its
 *    `sleeps` field, sorted latest first, each entry with a `timestamp`),
 *    which is not part of Effect's public API. It is read only if the probe
 *    at module load saw it behave as expected on a clock of its own: an entry
 *    while a sleep is pending, none once the sleep is interrupted. A contract
 *    test asserts that the probe passes, so an Effect upgrade that changes the
 *    field fails a test instead of silently changing what the helpers count.
 *
 * Both drop a sleep as soon as it ends for any reason, interrupted fibers
 * included.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"

interface Entry {
  readonly deadline: number
}

// The pending sleeps of every counting wrapper, by wrapper.
const registries = new WeakMap<Clock.Clock, Set<Entry>>()

/**
 * A `TestClock` that behaves as `clock` and records the deadline of each of
 * its sleeps from the moment it begins to the moment it ends (woken,
 * interrupted or failed). Delegates member by member rather than spreading,
 * so that it relies on the public `TestClock` interface only.
 *
 * @internal
 */
export const counting = (clock: TestClock.TestClock): TestClock.TestClock => {
  const pending = new Set<Entry>()
  const sleep = (duration: Duration.Duration): Effect.Effect<void> =>
    Effect.suspend(() => {
      const now = clock.currentTimeMillisUnsafe()
      const deadline = now + Duration.toMillis(duration)
      // A sleep that is already due returns at once and is never pending.
      if (!(deadline > now)) return clock.sleep(duration)
      return Effect.acquireUseRelease(
        Effect.sync(() => {
          const entry: Entry = { deadline }
          pending.add(entry)
          return entry
        }),
        () => clock.sleep(duration),
        (entry) =>
          Effect.sync(() => {
            pending.delete(entry)
          })
      )
    })
  const wrapper: TestClock.TestClock = {
    currentTimeMillisUnsafe: () => clock.currentTimeMillisUnsafe(),
    currentTimeMillis: clock.currentTimeMillis,
    currentTimeNanosUnsafe: () => clock.currentTimeNanosUnsafe(),
    currentTimeNanos: clock.currentTimeNanos,
    monotonicTimeNanosUnsafe: () => clock.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: clock.monotonicTimeNanos,
    sleep,
    adjust: (duration) => clock.adjust(duration),
    setTime: (timestamp) => clock.setTime(timestamp),
    withLive: (effect) => clock.withLive(effect)
  }
  registries.set(wrapper, pending)
  return wrapper
}

/** The `TestClock` implementation's own pending-sleep list, if it has the expected shape. */
const internalList = (clock: Clock.Clock): ReadonlyArray<{ readonly timestamp: number }> | undefined => {
  const sleeps: unknown = (clock as { readonly sleeps?: unknown }).sleeps
  if (!Array.isArray(sleeps)) return undefined
  for (const entry of sleeps) {
    if (typeof entry !== "object" || entry === null || typeof entry.timestamp !== "number") return undefined
  }
  return sleeps as ReadonlyArray<{ readonly timestamp: number }>
}

/**
 * Runs on a `TestClock` of its own, synchronously: one sleep must show as one
 * entry at its deadline, and no entry once it is interrupted.
 */
const probe = (): boolean => {
  try {
    // Closing the scope at once also stops the clock's "not advancing" warning.
    const clock = Effect.runSync(Effect.scoped(TestClock.make()))
    if (internalList(clock)?.length !== 0) return false
    const fiber = Effect.runFork(clock.sleep(Duration.seconds(1)))
    const during = internalList(clock)
    const ok = during?.length === 1 && during[0].timestamp === 1000
    fiber.interruptUnsafe()
    return ok && internalList(clock)?.length === 0
  } catch {
    return false
  }
}

/**
 * Whether the `TestClock` implementation's pending-sleep list can be read
 * (checked once, at module load).
 *
 * @internal
 */
export const readsTestClockInternals: boolean = probe()

const missing = (clock: Clock.Clock): Error =>
  new Error(
    readsTestClockInternals
      ? `TestTime: the Clock in context (${String(clock.constructor?.name ?? typeof clock)}) is not a TestClock: ` +
        `run the test with it.effect, or provide TestTime.layer`
      : "TestTime: this version of Effect's TestClock does not expose its pending sleeps in the way TestTime " +
        "knows; provide TestTime.layer (a TestClock that counts its sleeps) to the test"
  )

/**
 * The deadlines of the pending sleeps of the `TestClock` in context, earliest
 * first. Dies if they cannot be known (see the module doc).
 *
 * @internal
 */
export const deadlines: Effect.Effect<ReadonlyArray<number>> = Effect.withFiber((fiber) => {
  const clock = fiber.getRef(Clock.Clock)
  const pending = registries.get(clock)
  if (pending !== undefined) {
    return Effect.succeed(Array.from(pending, (entry) => entry.deadline).sort((a, b) => a - b))
  }
  const list = readsTestClockInternals ? internalList(clock) : undefined
  if (list !== undefined) return Effect.succeed(list.map((entry) => entry.timestamp).sort((a, b) => a - b))
  return Effect.die(missing(clock))
})

/**
 * The number of pending sleeps of the `TestClock` in context.
 *
 * @internal
 */
export const count: Effect.Effect<number> = Effect.withFiber((fiber) => {
  const clock = fiber.getRef(Clock.Clock)
  const pending = registries.get(clock)
  if (pending !== undefined) return Effect.succeed(pending.size)
  const list = readsTestClockInternals ? internalList(clock) : undefined
  return list !== undefined ? Effect.succeed(list.length) : Effect.die(missing(clock))
})
