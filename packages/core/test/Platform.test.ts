import { describe, expect, it } from "@effect/vitest"
import { TestTime } from "@refpersys/testkit"
import { Chunk, Effect, Fiber, Option, Schema, Stream, TestClock } from "effect"
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
  it.scoped("fires at its deadline on TestClock, never before; re-arming replaces; disarm cancels", () =>
    Effect.gen(function*() {
      const arms: Array<number> = []
      let cleared = 0
      const timer = yield* Platform.clockTimer({ name: "t", onArm: (d) => void arms.push(d), onClear: () => void cleared++ })
      const first = yield* Effect.fork(Stream.runCollect(Stream.take(timer.fired, 2)))
      yield* timer.arm(100)
      yield* timer.arm(50) // replaces 100
      yield* TestTime.adjustWhenSleeping(49)
      expect(Option.isNone(yield* Fiber.poll(first))).toBe(true)
      yield* TestClock.adjust(1)
      yield* timer.arm(300)
      yield* timer.disarm
      yield* timer.arm(200)
      yield* TestTime.adjustWhenSleeping(150)
      expect(Chunk.toReadonlyArray(yield* Fiber.join(first))).toEqual([50, 200])
      expect(arms).toEqual([100, 50, 300, 200])
      expect(cleared).toBeGreaterThanOrEqual(4)
    }))

  it.scoped("dies with the platform's name on a NaN deadline", () =>
    Effect.gen(function*() {
      const timer = yield* Platform.clockTimer({ name: "MyPlatform" })
      const exit = yield* Effect.exit(timer.arm(NaN))
      expect(String(exit)).toContain("MyPlatform: timer.arm got NaN")
    }))
})
