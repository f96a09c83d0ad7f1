import { Conformance } from "@refpersys/testkit"
import { Effect } from "effect"
import { realChildExit } from "./util.js"
import * as NodePlatform from "../src/NodePlatform.js"
import { closedFd, fifo } from "./fifos.js"

// Real resources throughout: signals go to this very process, fds are FIFOs
// written and closed by the test, and time is the wall clock.
const driver: Conformance.Driver = {
  clock: "live",
  raise: (signal) => Effect.sync(() => process.kill(process.pid, signal)),
  readableFd: Effect.map(fifo, (f) => ({
    fd: f.readFd,
    makeReadable: Effect.sync(() => f.write(Uint8Array.of(42))),
    hangup: Effect.sync(() => f.closeWriter())
  })),
  badFd: closedFd,
  childExit: realChildExit,
  advanceTo: () => Effect.void
}

// A short timer chunk, so that the long-timer test's moved Clock is seen soon.
Conformance.suite("NodePlatform", NodePlatform.layer({ timerChunkMillis: 20 }), driver)
