/**
 * A `runMain` for programs that own their signals and their exit code.
 * `NodeRuntime.runMain` interrupts the program on `SIGINT`/`SIGTERM` itself
 * and then exits 130 for both, which would race the daemon's own handling
 * (the platform layer claims those signals and the event loop quits, drains
 * and reports) and replace its documented exit codes (0 after a quit by
 * signal, 130 only after a second `SIGINT`). This one installs no signal
 * handler: it keeps the process alive while the program runs (platform
 * handles are unreferenced) and exits with the code the program returns.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"

const runMainWithCode = Runtime.makeRunMain(({ fiber, teardown }) => {
  fiber.addObserver((exit) => {
    teardown(exit, (code) => process.exit(code))
  })
})

/** The exit code of the program's end: its value, 130 when it was interrupted, 1 when it died. */
const exitCode = <E, A>(exit: Exit.Exit<A, E>): number =>
  Exit.isSuccess(exit)
    ? (typeof exit.value === "number" ? exit.value : 0)
    : Cause.hasInterruptsOnly(exit.cause)
    ? 130
    : 1

/** @internal */
export const runMain = (program: Effect.Effect<number>): void =>
  runMainWithCode(program, {
    teardown: (exit, onExit) => onExit(exitCode(exit))
  })
