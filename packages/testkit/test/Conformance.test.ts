import { Clock, Effect } from "effect"
import { TestClock } from "effect/testing"
import { Conformance, TestPlatform } from "../src/index.js"

// Raising an unclaimed signal kills a real process; here it would only be
// counted and dropped, and the test would wait for ever. Fail at once instead.
const raise = (signal: string) =>
  Effect.flatMap(TestPlatform.fromPlatform, (test) =>
    Effect.flatMap(test.signal(signal), (delivered) =>
      delivered ? Effect.void : Effect.die(new Error(`${signal} was raised but the platform had not claimed it`))))

const readableFd = Effect.gen(function*() {
  const test = yield* TestPlatform.fromPlatform
  const fd = yield* test.openFd
  return { fd, makeReadable: test.ready(fd, { read: true }), hangup: test.hangup(fd) }
})

const badFd = Effect.flatMap(TestPlatform.fromPlatform, (test) => Effect.tap(test.openFd, test.markClosed))

// Pids far above any real one, so a report can only come from this injection.
let nextPid = 4_000_000
const childExit = (code: number) =>
  Effect.flatMap(TestPlatform.fromPlatform, (test) => {
    const pid = nextPid++
    return Effect.as(test.childExit(pid, code), pid)
  })

const onTestClock: Conformance.Driver = {
  clock: "test",
  raise,
  readableFd,
  badFd,
  childExit,
  advanceTo: (deadline) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => TestClock.adjust(Math.max(0, deadline - now)))
}

Conformance.suite("TestPlatform", TestPlatform.layer(), onTestClock)

// The suite's live-clock path, which the real platforms take.
Conformance.suite("TestPlatform on the live clock", TestPlatform.layer({ timerChunkMillis: 20 }), {
  ...onTestClock,
  clock: "live",
  advanceTo: () => Effect.void
})

// The suite's branches for a platform without real-time signals and with a
// small fd limit.
Conformance.suite(
  "TestPlatform without real-time signals, maxFds 3",
  TestPlatform.layer({ maxFds: 3, realtimeSignals: false }),
  onTestClock
)
