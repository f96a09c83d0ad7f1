import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Platform from "../Platform.js"

/** @internal */
export interface ClockTimerHooks {
  readonly name: string
  /** The longest single sleep, 1..maxTimerChunkMillis; default maxTimerChunkMillis. */
  readonly chunkMillis?: number
  readonly onArm?: (deadline: number) => void
  /** Called when the armed deadline is cleared: fired, re-armed, disarmed or released. */
  readonly onClear?: () => void
}

// A live timer may wake a little early (setTimeout up to a millisecond): look
// at the clock again and sleep the rest, since the contract says the timer
// never fires before its deadline. No sleep is longer than `chunk`: the live
// Clock treats a sleep past 2^31-1 ms as infinite (setTimeout cannot take it),
// so a far deadline is a chain of chunks, each ending with a look at the clock.
const sleepUntil = (deadline: number, chunk: number): Effect.Effect<void> => {
  const loop: Effect.Effect<void> = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    now >= deadline ? Effect.void : Effect.andThen(Effect.sleep(Duration.millis(Math.min(deadline - now, chunk))), loop))
  return loop
}

// Interrupts without waiting for the fiber to end.
const interruptFork = (fiber: Fiber.Fiber<unknown, unknown>): Effect.Effect<void> =>
  Effect.sync(() => fiber.interruptUnsafe())

// Ends the queue and drops what is buffered: pending and later takes fail with
// `Done`, so a stream over it ends instead of being interrupted.
const endAndDiscard = <A>(queue: Queue.Queue<A, Cause.Done>): void => {
  Queue.endUnsafe(queue)
  Queue.shutdownUnsafe(queue)
}

/** @internal */
export const make = (hooks: ClockTimerHooks): Effect.Effect<Platform.Timer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const chunk = hooks.chunkMillis ?? Platform.maxTimerChunkMillis
    if (!Platform.isTimerChunk(chunk)) {
      return yield* Effect.die(
        new Error(
          `${hooks.name}: timerChunkMillis must be an integer from 1 to ${Platform.maxTimerChunkMillis}, got ${String(chunk)}`
        )
      )
    }
    // The clock of whoever acquires the timer, so that a `TestClock` moves it
    // whichever fiber later calls `arm`.
    const clock = yield* Clock.Clock
    const fired = yield* Queue.unbounded<number, Cause.Done>()
    let released = false
    let generation = 0
    let sleeper: Fiber.Fiber<void> | undefined = undefined

    const cancel = () => {
      // The generation guards the window in which an interrupted sleeper has
      // already woken but not yet run: it must not emit.
      generation++
      hooks.onClear?.()
      const previous = sleeper
      sleeper = undefined
      return previous === undefined ? Effect.void : interruptFork(previous)
    }

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        released = true
        return Effect.andThen(cancel(), Effect.sync(() => endAndDiscard(fired)))
      })
    )

    const arm = (deadline: number): Effect.Effect<void, Platform.PlatformError> =>
      Effect.uninterruptible(Effect.suspend(() => {
        if (!Platform.isDeadline(deadline)) return Effect.fail(Platform.invalidDeadline(hooks.name, deadline))
        if (released) return Effect.die(new Error(`${hooks.name}: timer.arm called after the timer's scope closed`))
        return Effect.gen(function*() {
          yield* cancel()
          const mine = generation
          hooks.onArm?.(deadline)
          // Forked interruptible on purpose: a fiber forked from this
          // uninterruptible region would inherit that, and the next `arm`
          // could not replace it.
          const fiber = yield* Effect.forkDetach(Effect.interruptible(Effect.andThen(
            Effect.provideService(sleepUntil(deadline, chunk), Clock.Clock, clock),
            Effect.sync(() => {
              if (mine !== generation) return
              sleeper = undefined
              hooks.onClear?.()
              Queue.offerUnsafe(fired, deadline)
            })
          )))
          if (mine === generation) sleeper = fiber
          else yield* interruptFork(fiber)
        })
      }))

    return {
      arm,
      disarm: Effect.suspend(() => (released ? Effect.void : cancel())),
      // One element per pull, so a consumer that stops early loses nothing.
      fired: Stream.fromEffectRepeat(Queue.take(fired))
    }
  })
