// Timers: a 1 ms periodic timer for N ticks, on an idle process.
import { Agenda, EventLoop } from "@refpersys/core"
import { LinuxPlatform } from "@refpersys/platform-linux"
import { Deferred, Duration, Effect, Exit, Layer, Schedule } from "effect"
import { interleave, percentile, rows, withTarget } from "./lib.mjs"

/**
 * Per round: jitter |gap − intended gap| (µs) between consecutive firings, and
 * drift: how far the last firing is behind the schedule's grid, relative to
 * the first firing, as a percentage of the elapsed time.
 */
const summarize = (times, intended, gridSpan) => {
  const jitter = []
  for (let i = 1; i < times.length; i++) jitter.push(Math.abs(times[i] - times[i - 1] - intended[i - 1]) * 1000)
  const span = times[times.length - 1] - times[0]
  return {
    p50: percentile(jitter, 50),
    p99: percentile(jitter, 99),
    drift: ((span - gridSpan) / span) * 100
  }
}

/** `Timeouts.every` through the event loop on the linux-native platform (timerfd). */
const timeouts = (ticks) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const loop = yield* EventLoop.make({ signals: [], defaultBindings: false })
    const times = []
    // Ticks skipped before each firing (the handle's running count), so a
    // skipped tick's 2 ms gap is not counted as jitter.
    const missedAt = []
    let handle
    const done = yield* Deferred.make()
    handle = yield* loop.timeouts.every(
      Duration.millis(1),
      Effect.sync(() => {
        if (times.length < ticks) {
          times.push(performance.now())
          missedAt.push(handle?.missed ?? 0)
        }
        if (times.length === ticks) Deferred.doneUnsafe(done, Exit.void)
      }),
      { label: "bench tick" }
    )
    yield* Deferred.await(done)
    yield* handle.cancel
    const missed = missedAt[missedAt.length - 1] - missedAt[0]
    const intended = missedAt.slice(1).map((m, i) => 1 + m - missedAt[i])
    return { ...summarize(times, intended, ticks - 1 + missed), missed }
  })).pipe(Effect.provide(Layer.merge(LinuxPlatform.layer(), Agenda.layer()))))

const setIntervalTicks = (ticks) =>
  new Promise((resolve) => {
    const times = []
    const timer = setInterval(() => {
      times.push(performance.now())
      if (times.length === ticks) {
        clearInterval(timer)
        resolve({ ...summarize(times, times.map(() => 1), ticks - 1), missed: 0 })
      }
    }, 1)
  })

/** Effect's own periodic schedule, `Schedule.fixed`, on the default scheduler. */
const scheduleFixed = (ticks) =>
  Effect.runPromise(Effect.gen(function*() {
    const times = []
    // Runs once, then `times` more.
    yield* Effect.repeat(Effect.sync(() => times.push(performance.now())), {
      schedule: Schedule.fixed(Duration.millis(1)),
      times: ticks - 1
    })
    if (times.length !== ticks) throw new Error(`Schedule.fixed ran ${times.length} of ${ticks} times`)
    return { ...summarize(times, times.map(() => 1), ticks - 1), missed: 0 }
  }))

const S = {
  timeouts: "Timeouts.every (EventLoop, timerfd)",
  interval: "setInterval",
  fixed: "Effect.repeat(Schedule.fixed)"
}

export default {
  name: "timers",
  title: "Timers: periodic 1 ms",
  method: "A 1 ms periodic timer on an otherwise idle process, N ticks per round. Jitter: |gap between " +
    "consecutive firings − 1 ms| in µs, p50 and p99 per round. `Timeouts.every` is fixed-rate: a tick the " +
    "loop was too late for is skipped and counted in `missed` (its 2 ms gap is not counted as jitter). " +
    "Drift: how far the last firing is behind the timer's own grid (N−1 intervals, plus skipped ones for " +
    "`Timeouts`), as a percentage of the elapsed time; `setInterval` re-arms from each late firing.",
  run: async ({ quick, rounds, progress }) => {
    const ticks = quick ? 500 : 2_000
    const subjects = [
      { name: S.timeouts, run: () => timeouts(ticks) },
      { name: S.interval, run: () => setIntervalTicks(ticks) },
      { name: S.fixed, run: () => scheduleFixed(ticks) }
    ]
    const values = await interleave({ subjects, rounds: quick ? rounds : Math.min(rounds, 3), warmup: 1, progress, label: "timers" })
    const r = rows("timers", values)
    const out = []
    for (const s of Object.values(S)) {
      out.push(r.measure(s, "p50", "µs", { metric: `jitter p50, ${ticks} ticks` }))
      out.push(r.measure(s, "p99", "µs", { metric: `jitter p99, ${ticks} ticks` }))
      const drift = r.measure(s, "drift", "%", { metric: "drift" })
      out.push(s === S.timeouts ? withTarget(drift, { op: "<=", value: 1, on: "max" }) : drift)
    }
    out.push(r.measure(S.timeouts, "missed", "ticks", { metric: "skipped late ticks" }))
    out.push(r.compare(S.timeouts, S.interval, "p50", { label: "jitter p50 ratio", target: { op: "<=", value: 1 } }))
    return out
  }
}
