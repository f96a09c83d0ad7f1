import { describe, it } from "@effect/vitest"
import { TestTime } from "@refpersys/testkit"
import { Clock, Duration, Effect, Fiber, Option, Result, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import { expect } from "vitest"
import * as Event from "../src/Event.js"
import * as Platform from "../src/Platform.js"

describe("Platform", () => {
  it("isClaimableSignal accepts catchable and real-time signals only", () => {
    for (const ok of ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGRTMIN", "SIGRTMIN+30", "SIGRTMAX", "SIGRTMAX-30"]) {
      expect(Platform.isClaimableSignal(ok), ok).toBe(true)
    }
    for (const bad of ["SIGKILL", "SIGSTOP", "SIGSEGV", "SIGRTMIN+31", "SIGRTMIN-1", "SIGRTMAX+1", "sigint", "", "SIGNOPE"]) {
      expect(Platform.isClaimableSignal(bad), bad).toBe(false)
    }
  })

  it("signalNames lists every standard name; only the catchable, non-fault ones are claimable", () => {
    expect(Platform.signalNames).toContain("SIGKILL")
    expect(Platform.signalNames.filter(Platform.isClaimableSignal)).toEqual([
      "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGCHLD", "SIGCONT",
      "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO",
      "SIGPWR", "SIGSYS"
    ])
  })

  it("command byte helpers shared by every platform", () => {
    expect([0, 68, 255].every(Platform.isCommandByte)).toBe(true)
    expect([-1, 256, 1.5, NaN, "D"].some(Platform.isCommandByte)).toBe(false)
    expect(Platform.invalidByte(256)).toMatchObject({ operation: "command", reason: "InvalidByte" })
    expect(Platform.invalidByte(256).message).toContain("integers from 0 to 255, got 256")
    const closed = Platform.closed("node-portable", "watch")
    expect(closed.reason).toBe("Closed")
    expect(closed.message).toBe(
      "watch failed (Closed): the node-portable platform's scope is closed; use the platform only inside the scope (or layer) that built it"
    )
  })

  it("PlatformError says what failed, why, and the errno when there is one", () => {
    const e = new Platform.PlatformError({ operation: "watch", reason: "BadFd", detail: "fd 99 is not open", errno: "EBADF" })
    expect(e.message).toBe("watch failed (BadFd, EBADF): fd 99 is not open")
    expect(new Platform.PlatformError({ operation: "signals", reason: "InvalidSignal", detail: "x" }).message).toBe(
      "signals failed (InvalidSignal): x"
    )
    expect(Schema.is(Platform.ErrorReason)("TooManyFds")).toBe(true)
  })
})

describe("Event", () => {
  it("round-trips every kind through the Schema union", () => {
    const events: Array<Event.Event> = [
      new Event.FdReady({ fd: 3, read: true, write: false, hup: false, error: false, at: 1 }),
      new Event.Signal({ signal: "SIGUSR1", at: 2 }),
      new Event.TimerFired({ id: 1, label: "t", deadline: 3, missed: 0, at: 3 }),
      new Event.Command({ byte: 68, at: 4 }),
      new Event.ChildExit({ pid: 42, code: null, signal: "SIGKILL", at: 5 })
    ]
    for (const e of events) {
      const json = JSON.parse(JSON.stringify(Schema.encodeSync(Event.Event)(e)))
      expect(Schema.decodeUnknownSync(Event.Event)(json)).toEqual(e)
    }
    expect(Event.kinds).toEqual(events.map((e) => e._tag))
  })

  it("rejects a command byte out of range", () => {
    expect(() => Schema.decodeUnknownSync(Event.Event)({ _tag: "Command", byte: 256, at: 0 })).toThrow()
  })

  it("describeByte shows hex and the character when printable", () => {
    expect(Event.describeByte(68)).toBe("0x44 'D'")
    expect(Event.describeByte(0)).toBe("0x00")
    expect(Event.describeByte(255)).toBe("0xff")
  })
})

describe("Platform.clockTimer", () => {
  it.effect("fires at its deadline on TestClock, never before; re-arming replaces; disarm cancels", () =>
    Effect.gen(function*() {
      const arms: Array<number> = []
      let cleared = 0
      const timer = yield* Platform.clockTimer({ name: "t", onArm: (d) => void arms.push(d), onClear: () => void cleared++ })
      const first = yield* Effect.forkChild(Stream.runCollect(Stream.take(timer.fired, 2)))
      yield* timer.arm(100)
      yield* timer.arm(50) // replaces 100
      yield* TestTime.adjustWhenSleeping(49)
      expect(first.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust(1)
      yield* timer.arm(300)
      yield* timer.disarm
      yield* timer.arm(200)
      yield* TestTime.adjustWhenSleeping(150)
      expect(yield* Fiber.join(first)).toEqual([50, 200])
      expect(arms).toEqual([100, 50, 300, 200])
      expect(cleared).toBeGreaterThanOrEqual(4)
    }))

  it.effect("fails with InvalidDeadline naming the platform for NaN and ±Infinity, and arms nothing", () =>
    Effect.gen(function*() {
      const arms: Array<number> = []
      const timer = yield* Platform.clockTimer({ name: "MyPlatform", onArm: (d) => void arms.push(d) })
      for (const deadline of [NaN, Infinity, -Infinity]) {
        const error = yield* Effect.flip(timer.arm(deadline))
        expect(error).toBeInstanceOf(Platform.PlatformError)
        expect(error.reason).toBe("InvalidDeadline")
        expect(error.detail).toContain("MyPlatform")
        expect(error.detail).toContain(String(deadline))
        expect(error.detail).toContain("disarm")
      }
      expect(arms).toEqual([])
    }))

  it.live("on the live Clock, a deadline past 2^31-1 ms is slept towards in chunks no longer than that", () =>
    Effect.gen(function*() {
      // The live Clock (setTimeout) takes a longer sleep as infinite: record what the timer asks for.
      const live = yield* Clock.Clock
      const sleeps: Array<number> = []
      const recording: Clock.Clock = {
        ...live,
        sleep: (duration) => {
          sleeps.push(Duration.toMillis(duration))
          return live.sleep(duration)
        }
      }
      const timer = yield* Effect.provideService(Platform.clockTimer({ name: "t" }), Clock.Clock, recording)
      for (const days of [25, 30]) {
        sleeps.length = 0
        yield* timer.arm(Date.now() + days * 86_400_000)
        yield* TestTime.eventually(Effect.sync(() => sleeps.length > 0), "the timer's first sleep")
        expect(sleeps[0]).toBe(Platform.maxTimerChunkMillis)
      }
      yield* timer.disarm
    }))

  it.live("a far deadline fires when a moved Clock reaches it, at the end of the current chunk", () =>
    Effect.gen(function*() {
      const shifted = TestTime.shiftedClock()
      const timer = yield* Effect.provideService(Platform.clockTimer({ name: "t", chunkMillis: 10 }), Clock.Clock, shifted.clock)
      const deadline = shifted.clock.currentTimeMillisUnsafe() + 25 * 86_400_000
      const fired = yield* Effect.forkChild(Stream.runHead(timer.fired))
      yield* timer.arm(deadline)
      // Moved once the timer sleeps: a move before would skip the chain.
      yield* TestTime.eventually(Effect.sync(() => shifted.sleeps() > 0), "the timer to sleep")
      shifted.shift(25 * 86_400_000)
      const result = yield* Fiber.join(fired).pipe(Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.fail(new Error("never fired")) }))
      expect(result).toEqual(Option.some(deadline))
      expect(shifted.clock.currentTimeMillisUnsafe()).toBeGreaterThanOrEqual(deadline)
    }))

  it.effect("dies on a chunkMillis outside 1..2^31-1", () =>
    Effect.gen(function*() {
      for (const chunkMillis of [0, 1.5, 2 ** 31, NaN]) {
        const exit = yield* Effect.exit(Effect.scoped(Platform.clockTimer({ name: "t", chunkMillis })))
        expect(String(exit)).toContain("timerChunkMillis must be an integer from 1 to 2147483647")
      }
    }))
})

describe("Platform.validateSignals", () => {
  const support = { platform: "p", realtimeSignals: true }

  it("accepts a list of claimable names and returns it", () => {
    expect(Platform.validateSignals(["SIGTERM", "SIGRTMIN+3"], support)).toEqual(Result.succeed(["SIGTERM", "SIGRTMIN+3"]))
  })

  it("refuses, with one typed InvalidSignal, what is not a list of claimable names", () => {
    const cases: Array<[unknown, string]> = [
      [[0], "signal list entry 0 is 0 (a number), not a signal name"],
      [[null], "signal list entry 0 is null, not a signal name"],
      [["SIGHUP", {}], "signal list entry 1 is [object Object] (a object)"],
      ["SIGHUP", "signals takes an array of signal names"],
      [["SIGKILL"], "SIGKILL cannot be claimed"],
      [["SIGNOPE"], "\"SIGNOPE\" is not a signal name"],
      [["SIGRTMIN+31"], "SIGRTMIN+31 is not a real-time signal name: SIGRTMIN+n and SIGRTMAX-n take n from 0 to 30"]
    ]
    for (const [names, detail] of cases) {
      const result = Platform.validateSignals(names, support)
      expect(Result.isFailure(result), String(names)).toBe(true)
      if (Result.isFailure(result)) {
        expect(result.failure.reason).toBe("InvalidSignal")
        expect(result.failure.detail).toContain(detail)
        expect(result.failure.detail).toContain("claimable on the p platform: SIGHUP, SIGINT")
      }
    }
  })

  it("names the platform's own limits: no real-time signals, a name the host lacks", () => {
    const noRt = Platform.validateSignals(["SIGRTMIN+1"], { platform: "q", realtimeSignals: false })
    expect(Result.isFailure(noRt) && noRt.failure.detail).toContain("SIGRTMIN+1 is a real-time signal and the q platform has none")
    const lacking = Platform.validateSignals(["SIGPWR"], {
      ...support,
      unavailable: (name) => (name === "SIGPWR" ? "SIGPWR has no number here" : undefined)
    })
    expect(Result.isFailure(lacking) && lacking.failure.detail).toContain("SIGPWR has no number here")
    expect(Result.isFailure(lacking) && lacking.failure.detail).not.toMatch(/claimable on the p platform:.*SIGPWR/)
  })
})
