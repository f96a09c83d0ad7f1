import { describe, expect, it } from "@effect/vitest"
import { Conformance } from "@refpersys/testkit"
import { Effect } from "effect"
import { pipeInScope, realChildExit } from "./util.js"
import * as LinuxPlatform from "../src/LinuxPlatform.js"
import * as Native from "../src/internal/native.js"

// Real kernel objects: signals go to this very process (through the addon's
// kill, as Node cannot name real-time signals), fds are pipe2 pipes closed
// by the test's scope, and time is the wall clock.
const addon = Native.addon

if (addon !== undefined) {
  const driver: Conformance.Driver = {
    clock: "live",
    raise: (signal) =>
      Effect.sync(() => {
        const signo = LinuxPlatform.signalNumber(signal)
        if (signo === undefined) throw new Error(`no signal number for ${signal}`)
        addon.raise(signo)
      }),
    readableFd: Effect.map(pipeInScope(addon), (pipe) => ({
      fd: pipe.readFd,
      makeReadable: Effect.sync(() => addon.sendByte(pipe.writeFd, 42)),
      hangup: Effect.sync(pipe.closeWrite)
    })),
    badFd: Effect.sync(() => {
      const { readFd, writeFd } = addon.pipe()
      addon.close(readFd)
      addon.close(writeFd)
      return readFd
    }),
    childExit: realChildExit,
    advanceTo: () => Effect.void
  }

    // A short timer chunk, so that the long-timer test's moved Clock is seen soon.
  Conformance.suite("LinuxPlatform", LinuxPlatform.layer({ timerChunkMillis: 20 }), driver)
} else {
  describe("LinuxPlatform conformance (native addon not loaded)", () => {
    it("is not required here, and the reason it is missing is reported", () => {
      expect(process.env.REFPERSYS_REQUIRE_NATIVE, `native addon required but not loaded: ${Native.loadError}`).not.toBe("1")
      expect(LinuxPlatform.isAvailable).toBe(false)
      expect(LinuxPlatform.loadError).toMatch(/\S/)
    })
  })
}
