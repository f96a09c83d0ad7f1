// Dispatch overhead through the whole event loop on the auto-selected
// platform (linux-native when the addon is built): signal -> handler,
// command byte -> handler, and 1 ms periodic timer jitter against setInterval,
// all in this process. Run after `npm run build`: node bench/loop-latency.mjs
import { Agenda, EventLoop } from "@refpersys/core"
import { AutoPlatform } from "@refpersys/platform-linux"
import { Deferred, Effect, Layer } from "effect"

const N = Number(process.argv[2] ?? 2000)
const pct = (xs, p) => {
  const s = xs.slice().sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
const us = (ms) => `${(ms * 1000).toFixed(1)} µs`
const report = (name, xs) => console.log(`${name.padEnd(34)} p50 ${us(pct(xs, 50)).padStart(10)}  p99 ${us(pct(xs, 99)).padStart(10)}  (n=${xs.length})`)

const program = Effect.scoped(Effect.gen(function*() {
  const loop = yield* EventLoop.make({ signals: ["SIGINT", "SIGTERM", "SIGUSR2"] })
  console.log(`platform: ${AutoPlatform.choice.name}`)

  // signal -> handler
  let t0 = 0
  let gate = yield* Deferred.make()
  const signalLat = []
  yield* loop.register({ explanation: "bench SIGUSR2", match: { _tag: "Signal", signal: "SIGUSR2" }, handle: () =>
    Effect.suspend(() => { signalLat.push(performance.now() - t0); return Deferred.succeed(gate, undefined) }) })
  for (let i = 0; i < N; i++) {
    gate = yield* Deferred.make()
    t0 = performance.now()
    process.kill(process.pid, "SIGUSR2")
    yield* Deferred.await(gate)
  }
  report("signal -> handler", signalLat.slice(100))

  // command byte -> handler
  const commandLat = []
  yield* loop.register({ explanation: "bench command", match: { _tag: "Command", byte: 1 }, handle: () =>
    Effect.suspend(() => { commandLat.push(performance.now() - t0); return Deferred.succeed(gate, undefined) }) })
  for (let i = 0; i < N; i++) {
    gate = yield* Deferred.make()
    t0 = performance.now()
    yield* loop.send(1)
    yield* Deferred.await(gate)
  }
  report("command byte -> handler", commandLat.slice(100))

  // 1 ms periodic: Timeouts through the loop vs setInterval, same process
  const ticks = N
  const timeoutTimes = []
  const done = yield* Deferred.make()
  const tick = yield* loop.timeouts.every("1 millis", Effect.sync(() => {
    if (timeoutTimes.length < ticks) timeoutTimes.push(performance.now())
    if (timeoutTimes.length === ticks) Deferred.unsafeDone(done, Effect.void)
  }), { label: "bench tick" })
  yield* Deferred.await(done)
  yield* tick.cancel
  console.log(`Timeouts.every skipped ${tick.missed} late ticks (counted, not fired in a burst)`)
  const intervalTimes = yield* Effect.async((resume) => {
    const times = []
    const h = setInterval(() => {
      times.push(performance.now())
      if (times.length === ticks) { clearInterval(h); resume(Effect.succeed(times)) }
    }, 1)
  })
  for (const [name, times] of [["Timeouts.every 1 ms (loop)", timeoutTimes], ["setInterval 1 ms", intervalTimes]]) {
    const gaps = times.slice(1).map((t, i) => Math.abs(t - times[i] - 1))
    const span = times[times.length - 1] - times[0]
    report(`${name}: |gap - 1 ms|`, gaps)
    console.log(`${"".padEnd(34)} ${ticks} firings spanned ${span.toFixed(0)} ms (${ticks - 1} ms nominal)`)
  }
  yield* loop.quit
  yield* loop.awaitStop
}))

const keepAlive = setInterval(() => {}, 60_000)
Effect.runPromise(program.pipe(Effect.provide(Layer.merge(AutoPlatform.layer, Agenda.layer())))).finally(() =>
  clearInterval(keepAlive)
)
