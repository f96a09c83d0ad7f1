/**
 * The README's event loop example, driven by the TestPlatform so it runs
 * anywhere: it injects a SIGHUP and a Q command, then prints why it stopped.
 * Run with `node examples/dist/event-loop.js` after a build.
 */
import { Agenda, EventLoop } from "@refpersys/core"
import { TestPlatform } from "@refpersys/testkit"
import { Effect, Layer } from "effect"

const program = Effect.scoped(Effect.gen(function*() {
  const loop = yield* EventLoop.make({ signals: ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1"] })
  yield* loop.register({
    explanation: "reload the configuration on SIGHUP",
    match: { _tag: "Signal", signal: "SIGHUP" },
    handle: () => Effect.log("reloading"),
    run: "Normal" // a tasklet on the agenda; "inline" runs in the loop
  })
  yield* loop.timeouts.every("100 millis", Effect.log("tick"), { label: "heartbeat" })
  const test = yield* TestPlatform.TestPlatform
  yield* test.signal("SIGHUP")
  yield* loop.timeouts.after("350 millis", loop.send("Q").pipe(Effect.orDie), { label: "stop the demo" })
  const stopped = yield* loop.awaitStop // SIGINT/SIGTERM or command Q quit, X exits
  console.log(stopped.reason, stopped.cause, stopped.agenda.stats.total.completed, "tasklet(s) completed")
}))

Effect.runPromise(program.pipe(Effect.provide(Layer.merge(TestPlatform.layer(), Agenda.layer()))))
