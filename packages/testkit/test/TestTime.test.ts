import { describe, it } from "@effect/vitest"
import { PriorityScheduler } from "@refpersys/core"
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Ref, Scheduler } from "effect"
import { TestClock } from "effect/testing"
import { expect } from "vitest"
import { TestTime } from "../src/index.js"
import * as PendingSleeps from "../src/internal/pendingSleeps.js"

// Forked while the parent's scheduler is the Low level, so even the child's
// first step runs on the priority scheduler at Low, and the child inherits
// the level.
const forkLow = <A, E>(scheduler: PriorityScheduler.PriorityScheduler, effect: Effect.Effect<A, E>) =>
  Effect.forkChild(effect).pipe(Effect.provideService(Scheduler.Scheduler, scheduler.scheduler("Low")))

// Busy work the test ends when it chooses, so "still busy when the clock
// moves" does not depend on how fast the machine is.
const spinWhile = (busy: Ref.Ref<boolean>) =>
  Effect.gen(function*() {
    while (yield* Ref.get(busy)) yield* Effect.yieldNow
  })

// Busy work of a fixed size: many trips through the scheduler before sleeping.
const spin = (turns: number) => Effect.repeat(Effect.yieldNow, { times: turns - 1 })

const sleepsOf = TestTime.pendingSleeps

describe("TestTime", () => {
  describe("the failure mode", () => {
    it.effect("TestClock.adjust alone misses a low-priority fiber that is still busy", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make()
        const busy = yield* Ref.make(true)
        const woke = yield* Deferred.make<void>()
        yield* forkLow(
          scheduler,
          spinWhile(busy).pipe(
            Effect.andThen(Effect.sleep("1 second")),
            Effect.andThen(Deferred.succeed(woke, undefined))
          )
        )

        yield* TestClock.adjust("1 second")
        yield* Ref.set(busy, false)
        yield* TestTime.awaitSleepers(1)

        // It went to sleep after the clock moved, so it sleeps from 1000 ms
        // to 2000 ms and the adjust that was meant for it is lost.
        expect(yield* Deferred.isDone(woke)).toBe(false)
        expect(yield* sleepsOf).toEqual([2000])
        expect(scheduler.ran[2]).toBeGreaterThan(0)
      }))

    it.effect("adjustWhenSleeping waits for the busy low-priority fiber and wakes it", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make()
        const fiber = yield* forkLow(
          scheduler,
          spin(2_000).pipe(Effect.andThen(Effect.sleep("1 second")), Effect.andThen(Clock.currentTimeMillis))
        )
        expect(yield* sleepsOf).toEqual([])

        yield* TestTime.adjustWhenSleeping("1 second")

        // Woken at its own deadline: it had slept from time 0.
        expect(yield* Fiber.join(fiber)).toBe(1000)
        expect(scheduler.ran[2]).toBeGreaterThanOrEqual(2_000)
      }))

    it.effect("yields below a Low fiber that shares the waiting fiber's priority scheduler", () => {
      const scheduler = PriorityScheduler.make()
      return Effect.gen(function*() {
        const fiber = yield* forkLow(scheduler, Effect.as(Effect.sleep("1 second"), "woke"))

        // The test fiber runs at Normal here, so an ordinary yield puts it
        // straight back ahead of the queued Low fiber.
        yield* Effect.yieldNow
        expect(yield* sleepsOf).toEqual([])

        // One yield is enough only if it goes behind the Low fiber.
        yield* TestTime.adjustWhenSleeping("1 second", { maxYields: 1 })
        expect(yield* Fiber.join(fiber)).toBe("woke")
      }).pipe(Effect.provideService(Scheduler.Scheduler, scheduler.scheduler("Normal")))
    })
  })

  describe("awaitSleepers", () => {
    it.effect("waits for the requested number of sleepers", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make()
        const busy = yield* Ref.make(true)
        const early = yield* Effect.forkChild(Effect.as(Effect.sleep("1 second"), "early"))
        const late = yield* forkLow(
          scheduler,
          spinWhile(busy).pipe(Effect.andThen(Effect.sleep("1 second")), Effect.as("late"))
        )

        const error = yield* Effect.flip(TestTime.adjustWhenSleeping("1 second", { sleepers: 2, maxYields: 100 }))
        expect(error).toMatchObject({ _tag: "SleepersNotReached", expected: 2, seen: 1, yields: 100 })
        // It failed before moving the clock.
        expect(yield* Clock.currentTimeMillis).toBe(0)

        yield* Ref.set(busy, false)
        yield* TestTime.awaitSleepers(2)
        expect(yield* sleepsOf).toEqual([1000, 1000])
        yield* TestTime.adjustWhenSleeping("1 second", { sleepers: 2 })
        expect(yield* Fiber.join(early)).toBe("early")
        expect(yield* Fiber.join(late)).toBe("late")
      }))

    it.effect("gives up with SleepersNotReached when the fiber never reaches its sleep", () =>
      Effect.gen(function*() {
        const never = yield* Deferred.make<void>()
        yield* Effect.forkChild(Effect.andThen(Deferred.await(never), Effect.sleep("1 second")))

        const error = yield* Effect.flip(TestTime.awaitSleepers(1, { maxYields: 25 }))
        expect(error._tag).toBe("SleepersNotReached")
        expect(error.message).toBe(
          "expected 1 pending TestClock sleep(s) but saw 0 after 25 yields: the fiber never reached its sleep; " +
            "check it is not blocked (on a lock, a queue, a Deferred or higher-priority work that never ends), " +
            "or raise maxYields"
        )

        // The default bound also ends the wait instead of hanging the test.
        const byDefault = yield* Effect.flip(TestTime.awaitSleepers(1))
        expect(byDefault).toMatchObject({ expected: 1, seen: 0, yields: 10_000 })
      }))

    it.effect("does not move the clock and returns at once when enough sleeps are pending", () =>
      Effect.gen(function*() {
        yield* Effect.forkChild(Effect.sleep("1 minute"))
        yield* TestTime.awaitSleepers(1)
        // maxYields 0 allows no yield: the check before the first yield must pass.
        yield* TestTime.awaitSleepers(1, { maxYields: 0 })
        yield* TestTime.awaitSleepers(0, { maxYields: 0 })
        expect(yield* Clock.currentTimeMillis).toBe(0)
      }))

    it.effect("dies on a bound that could never be reached", () =>
      Effect.gen(function*() {
        const nan = yield* Effect.exit(TestTime.awaitSleepers(1, { maxYields: Number.NaN }))
        const fraction = yield* Effect.exit(TestTime.awaitSleepers(1.5))
        const steps = yield* Effect.exit(TestTime.advanceUntil(Effect.succeed(true), "1 second", { maxSteps: -1 }))
        const exits: ReadonlyArray<Exit.Exit<unknown, unknown>> = [nan, fraction, steps]
        for (const exit of exits) {
          expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
        }
      }))
  })

  describe("adjustWhenSleeping", () => {
    it.effect("moves the clock by exactly the duration", () =>
      Effect.gen(function*() {
        const fiber = yield* Effect.forkChild(Effect.sleep("10 seconds"))
        yield* TestTime.adjustWhenSleeping("1500 millis")
        expect(yield* Clock.currentTimeMillis).toBe(1500)
        yield* TestTime.adjustWhenSleeping(Duration.seconds(2))
        expect(yield* Clock.currentTimeMillis).toBe(3500)
        expect(yield* sleepsOf).toEqual([10_000])
        expect(fiber.pollUnsafe()).toBeUndefined()

        yield* TestTime.adjustWhenSleeping("6500 millis")
        yield* Fiber.join(fiber)
        expect(yield* Clock.currentTimeMillis).toBe(10_000)
      }))
  })

  describe("advanceUntil", () => {
    // Ticks at once, then does busy work and sleeps a step, for ever.
    const ticker = (scheduler: PriorityScheduler.PriorityScheduler, ticks: Ref.Ref<number>) =>
      forkLow(
        scheduler,
        Effect.forever(
          Ref.update(ticks, (n) => n + 1).pipe(Effect.andThen(spin(200)), Effect.andThen(Effect.sleep("100 millis")))
        )
      )

    it.effect("steps the clock until the condition holds, without an extra step", () =>
      Effect.gen(function*() {
        const ticks = yield* Ref.make(0)
        yield* ticker(PriorityScheduler.make(), ticks)

        const steps = yield* TestTime.advanceUntil(Effect.map(Ref.get(ticks), (n) => n >= 4), "100 millis")

        expect(steps).toBe(3)
        expect(yield* Ref.get(ticks)).toBe(4)
        expect(yield* Clock.currentTimeMillis).toBe(300)
      }))

    it.effect("takes no step when the condition already holds, even with no sleeper", () =>
      Effect.gen(function*() {
        expect(yield* TestTime.advanceUntil(Effect.succeed(true), "1 second", { maxYields: 0 })).toBe(0)
        expect(yield* Clock.currentTimeMillis).toBe(0)
      }))

    it.effect("gives up with ConditionNotReached after maxSteps", () =>
      Effect.gen(function*() {
        const ticks = yield* Ref.make(0)
        yield* ticker(PriorityScheduler.make(), ticks)

        const error = yield* Effect.flip(TestTime.advanceUntil(Effect.succeed(false), "100 millis", { maxSteps: 3 }))

        expect(error).toMatchObject({ _tag: "ConditionNotReached", steps: 3, stepMillis: 100 })
        expect(error.message).toBe(
          "the condition still did not hold after 3 steps of 100 ms of TestClock time; check that the condition " +
            "can become true and that the step reaches the sleepers' deadlines, or raise maxSteps"
        )
        expect(yield* Clock.currentTimeMillis).toBe(300)
        expect(yield* Ref.get(ticks)).toBe(4)
      }))
  })
})

describe("TestTime on Effect 4: counting pending sleeps", () => {
  it("reads the pending sleeps of Effect's TestClock (fails if an Effect upgrade changes them)", () => {
    expect(PendingSleeps.readsTestClockInternals).toBe(true)
  })

  it.effect("needs no layer in it.effect, and lists the deadlines earliest first", () =>
    Effect.gen(function*() {
      yield* Effect.forkChild(Effect.sleep("3 seconds"))
      yield* Effect.forkChild(Effect.sleep("1 second"))
      yield* TestTime.awaitSleepers(2)
      expect(yield* TestTime.pendingSleeps).toEqual([1000, 3000])
      yield* TestTime.adjustWhenSleeping("1 second", { sleepers: 2 })
      expect(yield* TestTime.pendingSleeps).toEqual([3000])
    }))

  it.effect("a sleeper that is interrupted stops counting at once", () =>
    Effect.gen(function*() {
      const first = yield* Effect.forkChild(Effect.sleep("1 second"))
      yield* Effect.forkChild(Effect.sleep("2 seconds"))
      yield* TestTime.awaitSleepers(2)
      yield* Fiber.interrupt(first)
      expect(yield* TestTime.pendingSleeps).toEqual([2000])
      const error = yield* Effect.flip(TestTime.awaitSleepers(2, { maxYields: 10 }))
      expect(error).toMatchObject({ _tag: "SleepersNotReached", expected: 2, seen: 1 })
    }))

  it.effect("TestTime.layer counts the sleeps of its own TestClock through public APIs", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(
        spin(50).pipe(Effect.andThen(Effect.sleep("1 second")), Effect.andThen(Clock.currentTimeMillis))
      )
      const other = yield* Effect.forkChild(Effect.sleep("5 seconds"))
      yield* TestTime.adjustWhenSleeping("1 second", { sleepers: 2 })
      expect(yield* Fiber.join(fiber)).toBe(1000)
      expect(yield* TestTime.pendingSleeps).toEqual([5000])
      yield* Fiber.interrupt(other)
      expect(yield* TestTime.pendingSleeps).toEqual([])
      // The wrapper is the Clock here: Effect's TestClock is not read at all.
      expect(yield* Clock.Clock).not.toHaveProperty("sleeps")
    }).pipe(Effect.provide(TestTime.layer())))

  it.live("dies, naming the way out, when the Clock in context is not a TestClock", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(TestTime.awaitSleepers(1))
      expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
      expect(String(Exit.isFailure(exit) ? Cause.squash(exit.cause) : "")).toContain("TestTime.layer")
    }))

  it.effect("a negative duration dies instead of moving the TestClock backwards", () =>
    Effect.gen(function*() {
      yield* Effect.forkChild(Effect.sleep("1 second"))
      const adjust = yield* Effect.exit(TestTime.adjustWhenSleeping(-5))
      const advance = yield* Effect.exit(TestTime.advanceUntil(Effect.succeed(false), "-1 second"))
      const exits: ReadonlyArray<Exit.Exit<unknown, unknown>> = [adjust, advance]
      for (const exit of exits) {
        expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
      }
      expect(yield* Clock.currentTimeMillis).toBe(0)
    }))
})

describe("TestTime.shiftedClock", () => {
  it.live("reads the live clock plus the shift, and counts reads and sleeps", () =>
    Effect.gen(function*() {
      const shifted = TestTime.shiftedClock()
      const before = Date.now()
      shifted.shift(86_400_000)
      const read = yield* Effect.provideService(Clock.currentTimeMillis, Clock.Clock, shifted.clock)
      expect(read).toBeGreaterThanOrEqual(before + 86_400_000)
      expect(shifted.reads()).toBe(1)
      const nanos = shifted.clock.currentTimeNanosUnsafe()
      expect(nanos / BigInt(1_000_000)).toBeGreaterThanOrEqual(BigInt(before + 86_400_000))
      yield* Effect.provideService(Effect.sleep("1 millis"), Clock.Clock, shifted.clock)
      expect(shifted.sleeps()).toBe(1)
    }))
})

describe("TestTime.eventually", () => {
  it.effect("returns once the condition holds, checking before yielding", () =>
    Effect.gen(function*() {
      let polls = 0
      yield* TestTime.eventually(Effect.sync(() => ++polls >= 3), "third poll")
      expect(polls).toBe(3)
      yield* TestTime.eventually(Effect.succeed(true), "at once", { maxYields: 0 })
    }))

  it.effect("dies with the description when the condition never holds", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(TestTime.eventually(Effect.succeed(false), "the moon is cheese", { maxYields: 5 }))
      expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
      expect(String(Exit.isFailure(exit) ? Cause.squash(exit.cause) : "")).toContain(
        "condition never held after 5 yields: the moon is cheese"
      )
    }))
})
