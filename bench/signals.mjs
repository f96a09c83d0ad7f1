// Signals and commands through the whole event loop on the linux-native
// platform: round-trip latency to a handler, and a real-time signal storm.
import { Agenda, EventLoop } from "@refpersys/core"
import { LinuxPlatform } from "@refpersys/platform-linux"
import { Deferred, Effect, Exit, Layer } from "effect"
import { interleave, percentile, rows, withTarget } from "./lib.mjs"

// Round trips dropped at the start of each round (JIT warm-up of the path).
const WARM = 200
const RT_SIGNAL = "SIGRTMIN+3"

const provide = (effect) =>
  Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(Layer.merge(LinuxPlatform.layer(), Agenda.layer()))))

const stats = (latencies) => ({ p50: percentile(latencies, 50), p99: percentile(latencies, 99) })

/**
 * `trips` sequential round trips: `fire()` starts one, the handler records
 * the time since; the next starts when the handler ran. µs.
 */
const roundTrips = (trips, register, fire) =>
  provide(Effect.gen(function*() {
    const loop = yield* EventLoop.make({ signals: ["SIGUSR2"], defaultBindings: false })
    let t0 = 0
    let gate = yield* Deferred.make()
    const latencies = []
    yield* register(loop, () =>
      Effect.sync(() => {
        latencies.push((performance.now() - t0) * 1000)
        Deferred.doneUnsafe(gate, Exit.void)
      }))
    for (let i = 0; i < trips + WARM; i++) {
      gate = yield* Deferred.make()
      t0 = performance.now()
      yield* fire(loop)
      yield* Deferred.await(gate)
    }
    return stats(latencies.slice(WARM))
  }))

const signalTrips = (trips) =>
  roundTrips(
    trips,
    (loop, handle) => loop.register({ explanation: "bench: SIGUSR2", match: { _tag: "Signal", signal: "SIGUSR2" }, handle }),
    () => Effect.sync(() => process.kill(process.pid, "SIGUSR2"))
  )

const commandTrips = (trips) =>
  roundTrips(
    trips,
    (loop, handle) => loop.register({ explanation: "bench: command 1", match: { _tag: "Command", byte: 1 }, handle }),
    (loop) => loop.send(1)
  )

/** Node's own signal handling, for comparison (the library's claim is released by then). */
const nodeSignalTrips = async (trips) => {
  const latencies = []
  let t0 = 0
  let release = () => {}
  const handler = () => {
    latencies.push((performance.now() - t0) * 1000)
    release()
  }
  process.on("SIGUSR2", handler)
  try {
    for (let i = 0; i < trips + WARM; i++) {
      const handled = new Promise((resolve) => (release = resolve))
      t0 = performance.now()
      process.kill(process.pid, "SIGUSR2")
      await handled
    }
  } finally {
    process.off("SIGUSR2", handler)
  }
  return stats(latencies.slice(WARM))
}

/** `count` real-time signals sent back to back; all must arrive (they queue in the kernel). */
const storm = (count) =>
  provide(Effect.gen(function*() {
    const signo = LinuxPlatform.signalNumber(RT_SIGNAL)
    const loop = yield* EventLoop.make({ signals: [RT_SIGNAL], defaultBindings: false })
    const done = yield* Deferred.make()
    let received = 0
    let lastAt = 0
    yield* loop.register({
      explanation: "bench: count real-time signals",
      match: { _tag: "Signal", signal: RT_SIGNAL },
      handle: () =>
        Effect.sync(() => {
          lastAt = performance.now()
          if (++received === count) Deferred.doneUnsafe(done, Exit.void)
        })
    })
    const t0 = performance.now()
    for (let i = 0; i < count; i++) process.kill(process.pid, signo)
    // Every signal is expected; the timeout only turns a loss into a figure.
    yield* Effect.timeout(Deferred.await(done), "10 seconds").pipe(Effect.ignore)
    return { perSecond: received / ((lastAt - t0) / 1000), lost: count - received }
  }))

const S = {
  signal: "signal → handler (EventLoop)",
  node: "signal → process.on handler (Node)",
  command: "command byte → handler (EventLoop)",
  storm: `${RT_SIGNAL} storm (EventLoop)`
}

export default {
  name: "signals",
  title: "Signals and commands",
  method: "Sequential round trips through the event loop on the linux-native platform: `performance.now()` " +
    "before `process.kill(process.pid, \"SIGUSR2\")` (or `loop.send(1)`), again in the handler; the first 200 " +
    "of each round dropped. Node's `process.on(\"SIGUSR2\")` is measured the same way, between rounds in which " +
    `the library holds the signal. Storm: N \`${RT_SIGNAL}\` sent back to back with \`process.kill\`, counted by ` +
    "a handler; rate from the first send to the last delivery, and how many were lost (real-time signals queue " +
    "in the kernel, so none should be).",
  run: async ({ quick, rounds, progress }) => {
    const trips = quick ? 1_000 : 2_000
    const count = quick ? 5_000 : 10_000
    const subjects = [
      { name: S.signal, run: () => signalTrips(trips) },
      { name: S.node, run: () => nodeSignalTrips(trips) },
      { name: S.command, run: () => commandTrips(trips) },
      { name: S.storm, run: () => storm(count) }
    ]
    const values = await interleave({ subjects, rounds, warmup: 1, progress, label: "signals" })
    const r = rows("signals", values)
    const out = []
    for (const s of [S.signal, S.node, S.command]) {
      out.push(r.measure(s, "p50", "µs", { metric: `latency p50, ${trips} trips` }))
      out.push(r.measure(s, "p99", "µs", { metric: `latency p99, ${trips} trips` }))
    }
    out.push(r.measure(S.storm, "perSecond", "signals/s", { metric: `${count.toLocaleString("en-US")} sent back to back` }))
    out.push(withTarget(r.measure(S.storm, "lost", "signals", { metric: "lost" }), { op: "<=", value: 0, on: "max" }))
    out.push(r.compare(S.signal, S.node, "p50", { label: "latency p50 ratio" }))
    out.push(r.compare(S.signal, S.node, "p99", { label: "latency p99 ratio" }))
    return out
  }
}
