/**
 * The conformance suite of the `Platform` contract: one set of vitest tests
 * that every platform layer must pass, the `TestPlatform` of this kit as
 * much as the Linux native and portable Node layers.
 *
 * A platform is exercised through a {@link Driver}, which does what the
 * contract leaves to the outside world: raising a signal, making an fd
 * readable, hanging it up, finding an fd that cannot be watched, and moving
 * time. Every test gets a fresh platform from the layer, and waits on the
 * platform's own streams rather than on time, so it is fast on `TestClock`
 * and needs no fixed sleep on the live clock. A test that waits for an event
 * that never comes fails after 10 seconds of real time, on either clock.
 *
 * `suite` needs `@effect/vitest` and `vitest` (peer dependencies) and must be
 * called while vitest collects tests.
 *
 * @since 0.1.0
 */
import type * as EffectVitest from "@effect/vitest"
import { Platform } from "@refpersys/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { eventually, shiftedClock } from "./TestTime.js"

/**
 * What the suite needs from the outside world to exercise a platform.
 *
 * Every effect runs inside the test, with the platform under test provided
 * and, for `readableFd` and `badFd`, the test's scope (close what you open
 * there).
 *
 * @example
 * ```ts
 * import { Clock, Effect } from "effect"
 * import { TestClock } from "effect/testing"
 * import { Conformance, TestPlatform } from "@refpersys/testkit"
 *
 * const driver: Conformance.Driver = {
 *   clock: "test",
 *   raise: (signal) => Effect.flatMap(TestPlatform.fromPlatform, (test) => test.signal(signal)),
 *   readableFd: Effect.gen(function*() {
 *     const test = yield* TestPlatform.fromPlatform
 *     const fd = yield* test.openFd
 *     return { fd, makeReadable: test.ready(fd, { read: true }), hangup: test.hangup(fd) }
 *   }),
 *   badFd: Effect.flatMap(TestPlatform.fromPlatform, (test) => Effect.tap(test.openFd, test.markClosed)),
 *   advanceTo: (deadline) =>
 *     Effect.flatMap(Clock.currentTimeMillis, (now) => TestClock.adjust(Math.max(0, deadline - now))),
 *   childExit: (code) =>
 *     Effect.flatMap(TestPlatform.fromPlatform, (test) => Effect.as(test.childExit(4_000_000, code), 4_000_000))
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Driver {
  /**
   * Makes a signal arrive at this process (TestPlatform: inject; real
   * platforms: `process.kill(process.pid, name)` or a native raise). The
   * suite raises only signals it has claimed, and right after `signals`
   * returned: the contract says the claim holds by then.
   */
  readonly raise: (signal: string) => Effect.Effect<void, unknown, Platform.Platform>
  /**
   * A readable fd plus a way to make it readable and to hang it up
   * (TestPlatform: a fake fd number driven by the control service; real: a
   * pipe). The suite calls `makeReadable` and `hangup` at most once each,
   * and only while the fd is watched.
   */
  readonly readableFd: Effect.Effect<
    { readonly fd: number; readonly makeReadable: Effect.Effect<void, unknown>; readonly hangup: Effect.Effect<void, unknown> },
    unknown,
    Platform.Platform | Scope.Scope
  >
  /** An fd that must be rejected with `BadFd` (a closed fd, a regular file). */
  readonly badFd: Effect.Effect<number, unknown, Platform.Platform | Scope.Scope>
  /**
   * Waits until the timer armed at `deadline` may fire (TestPlatform: adjust
   * `TestClock`; real: nothing, the test awaits the event). Also used to
   * move a control sleep of the test to its deadline.
   */
  readonly advanceTo: (deadline: number) => Effect.Effect<void, unknown, Platform.Platform>
  /**
   * Ends a child process with exit code `code` and returns its pid
   * (TestPlatform: inject the exit; real platforms: spawn a real child and
   * track it). Called only while the suite reads `childExits`.
   */
  readonly childExit: (code: number) => Effect.Effect<number, unknown, Platform.Platform>
  /** Whether tests run on `TestClock` (`it.effect`) or the live clock (`it.live`). */
  readonly clock: "test" | "live"
}

// Loaded here rather than imported statically: vitest throws as soon as it is
// imported outside a vitest run, and the kit's index re-exports this module
// to programs that only want `TestTime` or `TestPlatform`. Outside vitest the
// error waits until someone calls `suite`.
// `describe` and `it` come from @effect/vitest, `expect` from vitest itself.
const vitest: Pick<typeof EffectVitest, "describe" | "it" | "expect"> | Error = await Promise.all([
  import("@effect/vitest"),
  import("vitest")
]).then(
  ([effectVitest, plain]) => ({ describe: effectVitest.describe, it: effectVitest.it, expect: plain.expect }),
  (error: unknown) => (error instanceof Error ? error : new Error(String(error)))
)

const vitestApi = (): Pick<typeof EffectVitest, "describe" | "it" | "expect"> => {
  if (vitest instanceof Error) {
    throw new Error(`Conformance.suite must be called from a test file run by vitest: ${vitest.message}`)
  }
  return vitest
}

const SAFETY_NET_MILLIS = 10_000
const VITEST_TIMEOUT_MILLIS = 30_000

// A safety net on the test's own clock would never go off under `TestClock`.
// A fresh live clock is the default of the `Clock` reference.
const liveClock = Clock.Clock.defaultValue()

const withSafetyNet = <A, E, R>(effect: Effect.Effect<A, E, R>, title: string): Effect.Effect<A, E, R> =>
  Effect.raceFirst(
    effect,
    Effect.sleep(Duration.millis(SAFETY_NET_MILLIS)).pipe(
      Effect.provideService(Clock.Clock, liveClock),
      Effect.andThen(Effect.die(
        new Error(
          `conformance test "${title}" waited ${SAFETY_NET_MILLIS} ms of real time for an event that never came`
        )
      ))
    )
  )

/**
 * Pulls a stream one element at a time, keeping what a pull brought beyond
 * that: a platform may deliver several events in one batch (each pull gives
 * a non-empty array, and the end of the stream is a `Done` failure).
 */
const puller = <A, E>(stream: Stream.Stream<A, E>): Effect.Effect<Effect.Effect<A, E | Error>, never, Scope.Scope> =>
  Effect.map(Stream.toPull(stream), (pull) => {
    const buffer: Array<A> = []
    const next: Effect.Effect<A, E | Error> = Effect.suspend(() =>
      buffer.length > 0
        ? Effect.succeed(buffer.shift() as A)
        : pull.pipe(
          Pull.catchDone(() => Effect.fail(new Error("the stream ended before the expected element"))),
          Effect.flatMap((batch) => {
            buffer.push(...batch)
            return next
          })
        )
    )
    return next
  })

const sleepUntil = (deadline: number) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Duration.millis(Math.max(0, deadline - now))))

/**
 * Registers the conformance tests of a platform layer with vitest, in a
 * `describe` block named after `name`. Each test builds a fresh platform
 * from `layer`.
 *
 * Checks: `info`; a claimed signal arrives once, as its name (SIGUSR2,
 * SIGHUP, and SIGRTMIN+1 when `info.realtimeSignals`); unclaimable and
 * unknown names fail with `InvalidSignal`; command bytes 0..255 arrive in
 * order, from `send` and from `unsafeSend` outside Effect, and other values
 * fail with `InvalidByte`; the timer fires with its deadline and not before,
 * re-arming replaces the deadline, `disarm` cancels it, a past deadline (to
 * -1e300) fires at once, one 25 or 30 days away fires when due, and NaN or
 * ±Infinity fail with `InvalidDeadline`; a signal list that is not of names
 * fails with `InvalidSignal` as `Platform.validateSignals` says; watching reports
 * readability, reports a hang-up and ends, and refuses bad fds (`BadFd`),
 * a second watch of an fd (`AlreadyWatched`) and one fd more than
 * `info.maxFds` (`TooManyFds`). The last test opens `maxFds + 1` fds from
 * the driver (two each for pipes), so run real platforms with a `maxFds`
 * that fits under the process's fd limit. On the live clock the long-timer
 * test acquires the timer under a `Clock` it then moves 25 days forward
 * (`TestTime.shiftedClock`), which the platform sees at the end of its
 * current sleep: run real platforms with a short `timerChunkMillis` (say 20).
 *
 * @example
 * ```ts
 * import { Conformance, TestPlatform } from "@refpersys/testkit"
 * declare const driver: Conformance.Driver
 *
 * Conformance.suite("TestPlatform", TestPlatform.layer(), driver)
 * ```
 *
 * @since 0.1.0
 * @category suites
 */
export const suite = (name: string, layer: Layer.Layer<Platform.Platform, unknown>, driver: Driver): void => {
  const { describe, expect, it } = vitestApi()

  /**
   * Expects `effect` to fail with a `PlatformError` of the given reason, and
   * returns the error. Succeeding is a test failure too.
   */
  const failsWith = <A, R>(
    effect: Effect.Effect<A, Platform.PlatformError, R>,
    reason: Platform.PlatformError["reason"]
  ): Effect.Effect<Platform.PlatformError, Error, R> =>
    Effect.matchEffect(effect, {
      onFailure: (error) => {
        expect(error._tag).toBe("PlatformError")
        expect(error.reason).toBe(reason)
        return Effect.succeed(error)
      },
      onSuccess: () =>
        Effect.fail(new Error(`expected a PlatformError with reason ${reason}, but the operation succeeded`))
    })

  const test = (title: string, body: Effect.Effect<void, unknown, Platform.Platform | Scope.Scope>): void => {
    const run = () => withSafetyNet(Effect.provide(Effect.scoped(body), layer), title)
    if (driver.clock === "test") it.effect(title, run, VITEST_TIMEOUT_MILLIS)
    else it.live(title, run, VITEST_TIMEOUT_MILLIS)
  }

  describe(`${name} (Platform conformance)`, () => {
    test(
      "info names the platform and allows at least one fd",
      Effect.gen(function*() {
        const { info } = yield* Platform.Platform
        expect(typeof info.name).toBe("string")
        expect(info.name.length).toBeGreaterThan(0)
        expect(Number.isInteger(info.maxFds)).toBe(true)
        expect(info.maxFds).toBeGreaterThanOrEqual(1)
        expect(typeof info.realtimeSignals).toBe("boolean")
      })
    )

    describe("signals", () => {
      test(
        "a claimed signal that is raised arrives once, as its name",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const names = ["SIGUSR2", "SIGHUP", ...(platform.info.realtimeSignals ? ["SIGRTMIN+1"] : [])]
          const next = yield* puller(yield* platform.signals(names))
          // One at a time: two pending standard signals may arrive in either order.
          for (const signal of names) {
            yield* driver.raise(signal)
            expect(yield* next).toBe(signal)
          }
          // Had the previous signal arrived twice, the duplicate would come first.
          yield* driver.raise(names[0])
          expect(yield* next).toBe(names[0])
        })
      )

      test(
        "claiming an unclaimable or unknown name fails with InvalidSignal naming it",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const cases: Array<[ReadonlyArray<string>, string]> = [
            [["SIGKILL"], "SIGKILL"],
            [["SIGSTOP"], "SIGSTOP"],
            [["SIGNOPE"], "SIGNOPE"],
            [["SIGUSR1", "SIGNOPE"], "SIGNOPE"]
          ]
          if (!platform.info.realtimeSignals) cases.push([["SIGRTMIN+1"], "SIGRTMIN+1"])
          for (const [names, bad] of cases) {
            const error = yield* failsWith(Effect.scoped(platform.signals(names)), "InvalidSignal")
            expect(error.detail).toContain(bad)
          }
        })
      )

      test(
        "a list that is not of signal names (0, null, not a list) fails with InvalidSignal, the same everywhere",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const support = { platform: platform.info.name, realtimeSignals: platform.info.realtimeSignals }
          const cases: Array<[unknown, string]> = [
            [[0], "entry 0 is 0"],
            [[null], "entry 0 is null"],
            [["SIGUSR1", undefined], "entry 1 is undefined"],
            ["SIGUSR1", "array of signal names"]
          ]
          for (const [names, why] of cases) {
            // Deliberately outside the type: callers from plain JavaScript or decoded config.
            const error = yield* failsWith(Effect.scoped(platform.signals(names as ReadonlyArray<string>)), "InvalidSignal")
            expect(error.detail).toContain(why)
            // One check serves every platform: the very error validateSignals gives.
            const expected = Platform.validateSignals(names, support)
            expect(Result.isFailure(expected) ? expected.failure.detail.split(";")[0] : undefined).toBe(
              error.detail.split(";")[0]
            )
          }
        })
      )

      test(
        "a claim ends with its scope, and the signals can be claimed again",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          yield* Effect.scoped(platform.signals(["SIGUSR2"]))
          const next = yield* puller(yield* platform.signals(["SIGUSR2"]))
          yield* driver.raise("SIGUSR2")
          expect(yield* next).toBe("SIGUSR2")
        })
      )
    })

    describe("child exits", () => {
      test(
        "an ended child is reported with its pid and exit code",
        Effect.gen(function*() {
          const { childExits } = yield* Platform.Platform
          const next = yield* puller(childExits)
          for (const code of [0, 3]) {
            const pid = yield* driver.childExit(code)
            expect(yield* next).toEqual({ pid, code, signal: null })
          }
        })
      )
    })

    describe("commands", () => {
      test(
        "bytes 0..255 sent in order arrive in order",
        Effect.gen(function*() {
          const { commands } = yield* Platform.Platform
          const bytes = Array.from({ length: 256 }, (_, i) => i)
          const received = yield* Effect.forkChild(Stream.runCollect(Stream.take(commands.received, bytes.length)))
          for (const byte of bytes) yield* commands.send(byte)
          expect(yield* Fiber.join(received)).toEqual(bytes)
        })
      )

      test(
        "unsafeSend works from outside Effect and keeps one sender's order",
        Effect.gen(function*() {
          const { commands } = yield* Platform.Platform
          const received = yield* Effect.forkChild(Stream.runCollect(Stream.take(commands.received, 4)))
          yield* commands.send(1)
          commands.unsafeSend(2)
          yield* Effect.callback<void>((resume) => {
            const handle = setImmediate(() => {
              commands.unsafeSend(3)
              resume(Effect.void)
            })
            return Effect.sync(() => clearImmediate(handle))
          })
          yield* commands.send(4)
          expect(yield* Fiber.join(received)).toEqual([1, 2, 3, 4])
        })
      )

      test(
        "values outside 0..255 fail with InvalidByte and send nothing",
        Effect.gen(function*() {
          const { commands } = yield* Platform.Platform
          for (const byte of [256, -1, 1.5, Number.NaN]) {
            yield* failsWith(commands.send(byte), "InvalidByte")
          }
          let thrown: unknown = undefined
          try {
            commands.unsafeSend(256)
          } catch (error) {
            thrown = error
          }
          expect(thrown).toMatchObject({ _tag: "PlatformError", reason: "InvalidByte" })
          yield* commands.send(7)
          expect(yield* Stream.runCollect(Stream.take(commands.received, 1))).toEqual([7])
        })
      )
    })

    describe("timer", () => {
      test(
        "arm fires with its deadline, and not before it",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const timer = yield* platform.timer
          // Stamped by a fiber of its own, so an early firing is seen at the
          // time it happens rather than when the test gets round to it.
          const receipt = yield* timer.fired.pipe(
            Stream.take(1),
            Stream.mapEffect((deadline) => Effect.map(Clock.currentTimeMillis, (at) => ({ deadline, at }))),
            Stream.runCollect,
            Effect.forkChild
          )
          const deadline = (yield* Clock.currentTimeMillis) + 50
          yield* timer.arm(deadline)
          yield* driver.advanceTo(deadline - 1)
          yield* driver.advanceTo(deadline)
          const fired = yield* Fiber.join(receipt)
          expect(fired.map((f) => f.deadline)).toEqual([deadline])
          expect(fired[0].at).toBeGreaterThanOrEqual(deadline)
        })
      )

      test(
        "re-arming replaces the deadline: an earlier one fires, the replaced one never does",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const timer = yield* platform.timer
          const next = yield* puller(timer.fired)
          const start = yield* Clock.currentTimeMillis
          yield* timer.arm(start + 100)
          yield* timer.arm(start + 50)
          yield* driver.advanceTo(start + 50)
          expect(yield* next).toBe(start + 50)
          // Waiting past start + 100: had that deadline survived, it would come first.
          yield* timer.arm(start + 150)
          yield* driver.advanceTo(start + 150)
          expect(yield* next).toBe(start + 150)
        })
      )

      test(
        "disarm cancels the pending deadline",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const timer = yield* platform.timer
          const next = yield* puller(timer.fired)
          const start = yield* Clock.currentTimeMillis
          yield* timer.arm(start + 50)
          yield* timer.disarm
          // A control sleep past the cancelled deadline, then a new arming:
          // the first firing must be the new one.
          const control = yield* Effect.forkChild(sleepUntil(start + 100))
          yield* driver.advanceTo(start + 100)
          yield* Fiber.join(control)
          yield* timer.arm(start + 150)
          yield* driver.advanceTo(start + 150)
          expect(yield* next).toBe(start + 150)
        })
      )
    })

    describe("timer deadlines", () => {
      test(
        "a past deadline fires at once, however far back (a second ago, 1700, -1e300)",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const timer = yield* platform.timer
          const next = yield* puller(timer.fired)
          const now = yield* Clock.currentTimeMillis
          for (const deadline of [now - 1000, Date.UTC(1700, 0, 1), -1e300, -Number.MAX_VALUE]) {
            yield* timer.arm(deadline)
            yield* driver.advanceTo(now)
            expect(yield* next).toBe(deadline)
          }
        })
      )

      test(
        "arm refuses NaN and ±Infinity with InvalidDeadline, and the timer still works",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const timer = yield* platform.timer
          const next = yield* puller(timer.fired)
          for (const deadline of [Number.NaN, Infinity, -Infinity]) {
            const error = yield* failsWith(timer.arm(deadline), "InvalidDeadline")
            expect(error.detail).toContain(String(deadline))
          }
          const deadline = (yield* Clock.currentTimeMillis) + 20
          yield* timer.arm(deadline)
          yield* driver.advanceTo(deadline)
          expect(yield* next).toBe(deadline)
        })
      )

      test(
        "a deadline 25 or 30 days away (past one host sleep of 2^31-1 ms) fires when due, not before",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          // On the live clock, the timer runs on a clock the test moves
          // forward; the platform notices at the end of its current chunk.
          const shifted = shiftedClock()
          const clock = driver.clock === "test" ? yield* Clock.Clock : shifted.clock
          const timer = yield* Effect.provideService(platform.timer, Clock.Clock, clock)
          for (const days of [25, 30]) {
            const receipt = yield* timer.fired.pipe(
              Stream.take(1),
              Stream.mapEffect((deadline) => Effect.sync(() => ({ deadline, at: clock.currentTimeMillisUnsafe() }))),
              Stream.runCollect,
              Effect.forkChild
            )
            const deadline = clock.currentTimeMillisUnsafe() + days * 86_400_000
            const reads = shifted.reads()
            yield* timer.arm(deadline)
            if (driver.clock === "test") {
              yield* driver.advanceTo(deadline - 1)
              expect(receipt.pollUnsafe()).toBeUndefined()
              yield* driver.advanceTo(deadline)
            } else {
              // Moved only once the platform has read the clock for this
              // arming (a kernel timer when arming, a sleeper right before it
              // sleeps): a move before that would skip the chained sleep.
              yield* eventually(Effect.sync(() => shifted.reads() > reads), "the timer to read its Clock")
              shifted.shift(days * 86_400_000)
            }
            const fired = yield* Fiber.join(receipt)
            expect(fired.map((f) => f.deadline)).toEqual([deadline])
            expect(fired[0].at).toBeGreaterThanOrEqual(deadline)
          }
        })
      )
    })

    describe("watch", () => {
      test(
        "a readable fd reports read, and only what the interest asks for",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const { fd, makeReadable } = yield* driver.readableFd
          const reports = yield* platform.watch(fd, { read: true })
          yield* makeReadable
          const first = yield* Stream.runCollect(Stream.take(reports, 1))
          expect(first).toEqual([{ read: true, write: false, hup: false, error: false }])
        })
      )

      test(
        "a hang-up reports hup and ends the stream, which unwatches the fd",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const { fd, hangup } = yield* driver.readableFd
          const reports = yield* platform.watch(fd, { read: true })
          yield* hangup
          const all = yield* Stream.runCollect(reports)
          expect(all.length).toBeGreaterThan(0)
          expect(all[all.length - 1].hup).toBe(true)
          expect(all.filter((r) => r.hup)).toHaveLength(1)
          // Still watched, this would fail with AlreadyWatched.
          yield* platform.watch(fd, { read: true })
        })
      )

      test(
        "watching a watched fd fails with AlreadyWatched until the first watch's scope closes",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const { fd } = yield* driver.readableFd
          yield* Effect.scoped(Effect.gen(function*() {
            yield* platform.watch(fd, { read: true })
            const error = yield* failsWith(Effect.scoped(platform.watch(fd, { read: true })), "AlreadyWatched")
            expect(error.detail).toContain(String(fd))
          }))
          yield* platform.watch(fd, { read: true })
        })
      )

      test(
        "bad fds fail with BadFd",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const bad = yield* driver.badFd
          for (const fd of [-1, 1.5, bad]) {
            yield* failsWith(Effect.scoped(platform.watch(fd, { read: true })), "BadFd")
          }
        })
      )

      test(
        "one fd more than info.maxFds fails with TooManyFds, and a hang-up frees a slot",
        Effect.gen(function*() {
          const platform = yield* Platform.Platform
          const { maxFds } = platform.info
          const fds = yield* Effect.forEach(Array.from({ length: maxFds + 1 }), () => driver.readableFd)
          const streams = yield* Effect.forEach(fds.slice(0, maxFds), ({ fd }) => platform.watch(fd, { read: true }))
          const extra = fds[maxFds]
          yield* failsWith(Effect.scoped(platform.watch(extra.fd, { read: true })), "TooManyFds")
          yield* fds[0].hangup
          yield* Stream.runDrain(streams[0])
          const reports = yield* platform.watch(extra.fd, { read: true })
          yield* extra.makeReadable
          const first = yield* Stream.runCollect(Stream.take(reports, 1))
          expect(first.map((r) => r.read)).toEqual([true])
        })
      )
    })
  })
}
