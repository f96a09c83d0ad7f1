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
          return blockedIn(signo)
        }))
        const after = blockedIn(signo)
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
