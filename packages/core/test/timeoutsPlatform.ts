/**
 * Test doubles for the Timeouts tests: a Platform whose only working part is
 * the timer (built on `Effect.sleep`, so it follows whatever `Clock` the
 * arming fiber runs on), and a hand-driven `Clock` for tests that need more
 * timer wake-ups than `TestClock` can deliver quickly.
 *
 * Kept separate from the test kit's `TestPlatform` on purpose: the Timeouts
 * tests observe every arm call, and must not depend on another module's
 * timer semantics.
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { Platform, PlatformError } from "../src/Platform.js"

/** What the test platform's timer was asked to do. */
export interface TimerProbe {
  /** The deadline of every `arm` call, in order. */
  readonly arms: Array<number>
  /** `disarm` calls. */
  disarms: number
  /** The deadline the timer is armed to and has not fired for yet. */
  armed: number | undefined
}

const unsupported = (operation: string) =>
  new PlatformError({ operation, reason: "Unsupported", detail: "the Timeouts test platform only has a timer" })

/**
 * A platform whose timer sleeps on the `Clock` until the deadline, then emits
 * it on `fired`. Arming interrupts the previous sleeper, as the contract's
 * "arming again replaces the previous deadline" asks.
 */
export const makeTimeoutsPlatform: Effect.Effect<{ readonly platform: Platform; readonly probe: TimerProbe }> = Effect
  .sync(() => {
    const probe: TimerProbe = { arms: [], disarms: 0, armed: undefined }
    const timer = Effect.gen(function*() {
      const scope = yield* Effect.scope
      const fired = yield* Queue.unbounded<number, Cause.Done>()
      let sleeper: Fiber.Fiber<void> | undefined
      const stop = Effect.suspend(() => {
        const previous = sleeper
        sleeper = undefined
        return previous === undefined ? Effect.void : Fiber.interrupt(previous)
      })
      yield* Effect.addFinalizer(() => stop)
      const arm = (deadline: number) =>
        Effect.gen(function*() {
          probe.arms.push(deadline)
          probe.armed = deadline
          yield* stop
          sleeper = yield* Effect.forkIn(
            Clock.currentTimeMillis.pipe(
              Effect.flatMap((now) => Effect.sleep(Duration.millis(Math.max(0, deadline - now)))),
              Effect.andThen(Effect.sync(() => {
                if (probe.armed === deadline) probe.armed = undefined
              })),
              Effect.andThen(Queue.offer(fired, deadline)),
              Effect.asVoid
            ),
            scope
          )
        })
      const disarm = Effect.suspend(() => {
        probe.disarms++
        probe.armed = undefined
        return stop
      })
      yield* Effect.addFinalizer(() => Queue.end(fired))
      return { arm, disarm, fired: Stream.fromQueue(fired) }
    })
    const platform: Platform = {
      info: { name: "timeouts-test", maxFds: 0, realtimeSignals: false },
      signals: () => Effect.fail(unsupported("signals")),
      timer,
      watch: () => Effect.fail(unsupported("watch")),
      commands: {
        send: () => Effect.fail(unsupported("command")),
        unsafeSend: () => {
          throw unsupported("command")
        },
        received: Stream.empty
      },
      childExits: Stream.empty
    }
    return { platform, probe }
  })

interface Sleeper {
  readonly wakeAt: number
  readonly seq: number
  readonly wake: () => void
}

/**
 * A `Clock` moved only by `setTime`. Unlike `TestClock`, which gives every
 * woken sleeper three `setTimeout(0)` turns (about 4.5 ms each here), waking
 * is just resuming the fiber, so a test can afford 10,000 timer wake-ups; and
 * `setTime` moves the time before it wakes anyone, as a late OS timer does,
 * so the woken fibers see how late they are. An interrupted sleep is
 * forgotten at once.
 */
export class ManualClock implements Clock.Clock {
  private time: number
  private seq = 0
  private readonly sleepers = new Set<Sleeper>()

  constructor(start: number) {
    this.time = start
  }

  get now(): number {
    return this.time
  }

  /** Sleeps not yet woken. */
  get sleeping(): number {
    return this.sleepers.size
  }

  currentTimeMillisUnsafe(): number {
    return this.time
  }

  currentTimeNanosUnsafe(): bigint {
    return BigInt(Math.round(this.time * 1_000_000))
  }

  monotonicTimeNanosUnsafe(): bigint {
    return this.currentTimeNanosUnsafe()
  }

  readonly currentTimeMillis: Effect.Effect<number> = Effect.sync(() => this.time)

  readonly currentTimeNanos: Effect.Effect<bigint> = Effect.sync(() => this.currentTimeNanosUnsafe())

  readonly monotonicTimeNanos: Effect.Effect<bigint> = this.currentTimeNanos

  // A woken sleeper is resumed from its own fiber's dispatcher, not inside
  // `setTime`: every due sleeper is woken before any of them runs.
  sleep(duration: Duration.Duration): Effect.Effect<void> {
    return Effect.withFiber((fiber) =>
      Effect.callback<void>((resume) => {
        const wakeAt = this.time + Duration.toMillis(duration)
        if (wakeAt <= this.time) return resume(Effect.void)
        const wake = () => fiber.currentDispatcher.scheduleTask(() => resume(Effect.void), 0)
        const sleeper: Sleeper = { wakeAt, seq: this.seq++, wake }
        this.sleepers.add(sleeper)
        return Effect.sync(() => void this.sleepers.delete(sleeper))
      })
    )
  }

  /** Jumps to `time`, then wakes every sleeper due, earliest first. */
  setTime(time: number): void {
    if (time < this.time) throw new Error(`ManualClock: cannot go back from ${this.time} to ${time}`)
    this.time = time
    const due = [...this.sleepers].filter((s) => s.wakeAt <= time).sort((a, b) => a.wakeAt - b.wakeAt || a.seq - b.seq)
    for (const s of due) {
      this.sleepers.delete(s)
      s.wake()
    }
  }
}
