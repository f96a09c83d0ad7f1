/**
 * A `runMain` for programs that own their signals. `NodeRuntime.runMain`
 * interrupts the program on `SIGINT`/`SIGTERM` itself, which would race the
 * daemon's own handling (the platform layer claims those signals and the
 * event loop quits, drains and reports). This one only keeps the process
 * alive while the program runs (platform handles are unreferenced) and exits
 * with the code the program returns.
 *
 * @internal
 */
import * as Runtime from "@effect/platform/Runtime"
import * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

const runMainWithCode = Runtime.makeRunMain(({ fiber, teardown }) => {
  const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
  fiber.addObserver((exit) => {
    clearInterval(keepAlive)
    teardown(exit, (code) => process.exit(code))
  })
})

/** @internal */
export const runMain = (program: Effect.Effect<number>): void =>
  runMainWithCode(program, {
    disablePrettyLogger: true,
    teardown: (exit, onExit) =>
      onExit(Exit.isSuccess(exit) ? (exit.value as number) : Cause.hasInterruptsOnly(exit.cause) ? 130 : 1)
  })
