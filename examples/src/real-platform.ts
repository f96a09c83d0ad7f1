/**
 * The event loop on this machine's real platform (the native Linux layer when
 * its addon built, else the portable one): a periodic timer, a real signal
 * sent to the process itself, and a command byte that stops the loop.
 * Run with `node examples/dist/real-platform.js` after a build.
 */
import { Agenda, EventLoop, type Timeouts } from "@refpersys/core"
import { AutoPlatform } from "@refpersys/platform-linux"
import { Effect, Layer } from "effect"

const program = Effect.scoped(Effect.gen(function*() {
  const loop = yield* EventLoop.make({ signals: ["SIGUSR2"] })
  let ticks = 0
  yield* loop.register({
    explanation: "quit on SIGUSR2, through the command channel",
    match: { _tag: "Signal", signal: "SIGUSR2" },
    handle: () => Effect.orDie(loop.send("Q"))
  })
  const heartbeat: Timeouts.TimeoutHandle = yield* loop.timeouts.every("20 millis", Effect.suspend(() => {
    if (++ticks < 3) return Effect.void
    process.kill(process.pid, "SIGUSR2") // a real signal, read by the platform
    return heartbeat.cancel
  }), { label: "heartbeat" })
  const stopped = yield* loop.awaitStop
  console.log(
    `${AutoPlatform.choice.name}: ${ticks} ticks, stopped by ${stopped.reason} (${stopped.cause}), ` +
      `signals ${JSON.stringify(stopped.loop.signals)}`
  )
}))

// Platform handles never keep Node alive (a daemon keeps itself alive):
// this interval does, until the program ends.
const keepAlive = setInterval(() => {}, 1 << 30)
Effect.runPromise(program.pipe(Effect.provide(Layer.merge(AutoPlatform.layer, Agenda.layer())))).then(
  () => clearInterval(keepAlive),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
