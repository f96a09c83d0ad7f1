import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import * as fs from "node:fs"
import * as LinuxPlatform from "../src/LinuxPlatform.js"
import * as Native from "../src/internal/native.js"

const addon = Native.addon

// Each thread's blocked mask from /proc (tid to whether `signo` is blocked); threads that ended are skipped.
const blockedIn = (signo: number): Map<number, boolean> => {
  const result = new Map<number, boolean>()
  for (const tid of fs.readdirSync("/proc/self/task")) {
    let status: string
    try {
      status = fs.readFileSync(`/proc/self/task/${tid}/status`, "utf8")
    } catch {
      continue
    }
    const match = /^SigBlk:\s*([0-9a-f]+)$/m.exec(status)
    if (match !== null) result.set(Number(tid), ((BigInt(`0x${match[1]}`) >> BigInt(signo - 1)) & 1n) === 1n)
  }
  return result
}

// The helper handler that changes another thread's mask acknowledges before it
// returns, and the kernel installs the changed mask only at that return, so a
// thread may show its old mask for a moment after a claim or a release has
// returned. Reads until every thread with an expectation shows it, within 5 s,
// and returns the last reading (the test then checks it).
const settledMasks = (signo: number, expected: (tid: number) => boolean | undefined) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 5_000
    for (;;) {
      const masks = blockedIn(signo)
      const settled = [...masks].every(([tid, blocked]) => expected(tid) === undefined || expected(tid) === blocked)
      if (settled || Date.now() > deadline) return masks
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))
    }
  })

if (addon !== undefined) {
  describe("LinuxPlatform signals (native addon)", () => {
    it.live("after a claim, a storm of real-time signals is counted in full, mostly through the signalfd", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const signo = LinuxPlatform.signalNumber("SIGRTMIN+2")!
        const stream = yield* platform.signals(["SIGRTMIN+2"])
        const before = LinuxPlatform.signalStats()
        const total = 10_000
        const counted = yield* Effect.forkChild(Stream.runCount(Stream.take(stream, total)))
        for (let i = 0; i < total; i++) {
          if (i % 2 === 0) process.kill(process.pid, signo)
          else addon.raise(signo)
        }
        expect(yield* Fiber.join(counted)).toBe(total)
        const after = LinuxPlatform.signalStats()
        const viaSignalfd = after.viaSignalfd - before.viaSignalfd
        const viaForwarding = after.viaForwarding - before.viaForwarding
        console.log(`signal storm: ${viaSignalfd} via signalfd, ${viaForwarding} via forwarding`)
        expect(viaSignalfd + viaForwarding).toBe(total)
        expect(viaSignalfd).toBeGreaterThanOrEqual(total * 0.9)
      }))

    it.effect("a claim blocks the signal in every thread; its release restores each thread's mask", () =>
      Effect.gen(function*() {
        const signo = LinuxPlatform.signalNumber("SIGRTMIN+3")!
        const before = blockedIn(signo)
        const during = yield* Effect.scoped(Effect.gen(function*() {
          const platform = yield* LinuxPlatform.make()
          yield* platform.signals(["SIGRTMIN+3"])
          return yield* settledMasks(signo, (tid) => before.has(tid) ? true : undefined)
        }))
        const after = yield* settledMasks(signo, (tid) => before.get(tid))
        for (const [tid, blocked] of during) {
          if (before.has(tid)) expect({ tid, blocked }).toEqual({ tid, blocked: true })
        }
        for (const [tid, blocked] of after) {
          if (before.has(tid)) expect({ tid, blocked }).toEqual({ tid, blocked: before.get(tid) })
        }
        expect([...during.keys()].filter((tid) => before.has(tid)).length).toBeGreaterThan(1)
      }))
  })
} else {
  describe("LinuxPlatform signals", () => {
    it("needs the native addon", () => {
      expect(Native.loadError).toBeDefined()
    })
  })
}
