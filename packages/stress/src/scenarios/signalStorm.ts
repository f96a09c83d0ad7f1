/**
 * Signal storms: real-time signals (which the kernel queues, so each one must
 * be counted) interleaved with floods of standard ones (which coalesce, so
 * each kind must arrive at least once), `SIGCHLD` among them, sent to the
 * process while the agenda is saturated and real children exit. A second
 * phase floods `SIGCHLD` claimed through the portable layer.
 *
 * @since 0.1.0
 */
import { Agenda, EventLoop, Platform } from "@refpersys/core"
import { LinuxPlatform, NodePlatform } from "@refpersys/platform-linux"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { spawn } from "node:child_process"
import { Checks } from "../internal/checks.js"
import * as Load from "../internal/load.js"
import { Prng } from "../internal/prng.js"
import { nextTurn, waitFor } from "../internal/probes.js"
import * as Runtime from "../internal/runtime.js"
import * as Scenario from "../Scenario.js"

const NAME = "signal-storm"
const REALTIME = ["SIGRTMIN+4", "SIGRTMIN+5", "SIGRTMAX-3", "SIGRTMAX-4"]
const STANDARD = ["SIGUSR1", "SIGUSR2", "SIGHUP", "SIGCHLD"]

const sizes = {
  small: { realtime: 2_000, standardEvery: 7, chld: 300, children: 2, burst: 200 },
  full: { realtime: 10_000, standardEvery: 5, chld: 2_000, children: 6, burst: 250 }
}

/** `process.kill` to self, retrying while the kernel's queue of pending signals is full (EAGAIN). */
const raise = (signal: number | NodeJS.Signals, stats: { eagain: number }): Effect.Effect<void> =>
  Effect.suspend(function retry(): Effect.Effect<void> {
    try {
      process.kill(process.pid, signal)
      return Effect.void
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") return Effect.die(error)
      stats.eagain++
      return Effect.andThen(nextTurn, retry())
    }
  })

/** A real child that exits with `code`; resolves with the code Node saw. */
const child = (code: number): Effect.Effect<number | null> =>
  Effect.callback<number | null>((resume) => {
    const proc = spawn(process.execPath, ["-e", `process.exit(${code})`], { stdio: "ignore" })
    proc.on("exit", (c) => resume(Effect.succeed(c)))
    proc.on("error", () => resume(Effect.succeed(null)))
  })

const counter = (loop: EventLoop.EventLoop, counts: Record<string, number>) =>
  loop.register({
    explanation: "count every signal",
    match: { _tag: "Signal" },
    handle: (event) =>
      Effect.sync(() => {
        counts[event.signal] = (counts[event.signal] ?? 0) + 1
      })
  })

/**
 * The scenario.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "every real-time signal of a storm is counted and each flooded standard signal (SIGCHLD too) arrives at least once, while the agenda is saturated; node:child_process still sees its children exit",
  body: (size) =>
    Effect.gen(function*() {
      const n = sizes[size]
      const prng = new Prng(0x5157)
      const checks = new Checks()
      const stats = { eagain: 0 }
      const signo = new Map(REALTIME.map((name) => [name, LinuxPlatform.signalNumber(name)!]))
      const sent: Record<string, number> = {}
      const arrived: Record<string, number> = {}
      const bump = (name: string) => {
        sent[name] = (sent[name] ?? 0) + 1
      }

      // ---- phase 1: real-time and standard signals through the native platform
      const phase1 = yield* Effect.scoped(Effect.gen(function*() {
        const { agenda, loop } = yield* Runtime.make({
          agenda: { workers: 4, capacity: 64, logFailures: false },
          loop: { signals: [...REALTIME, ...STANDARD], defaultBindings: false }
        })
        yield* counter(loop, arrived)
        const load = yield* Load.start(agenda, { prng, submitters: 2, kinds: ["spin", "yield", "sleep"] })
        yield* waitFor(() => load.accepted() >= 500, "10 seconds")
        const before = LinuxPlatform.signalStats()
        const acceptedBefore = load.accepted()
        const children = yield* Effect.forkScoped(
          Effect.forEach(Array.from({ length: n.children }, (_, i) => i + 3), child, { concurrency: "unbounded" })
        )
        const start = performance.now()
        for (let i = 0; i < n.realtime; i++) {
          const name = REALTIME[i % REALTIME.length]
          yield* raise(signo.get(name)!, stats)
          bump(name)
          if (i % n.standardEvery === 0) {
            const std = STANDARD[(i / n.standardEvery) % STANDARD.length]
            yield* raise(std as NodeJS.Signals, stats)
            bump(std)
          }
          if (i % n.burst === n.burst - 1) yield* nextTurn
          if ((i + 1) % (n.realtime / 4) === 0) {
            yield* Scenario.progress(NAME, `${i + 1} of ${n.realtime} real-time signals sent`)
          }
        }
        const sendMillis = performance.now() - start
        const complete = yield* waitFor(
          () =>
            REALTIME.every((name) => (arrived[name] ?? 0) >= sent[name]) &&
            STANDARD.every((name) => (arrived[name] ?? 0) >= 1),
          "30 seconds"
        )
        const countMillis = performance.now() - start
        checks.that(complete, "not every signal arrived within 30 seconds")
        const codes = yield* Fiber.join(children).pipe(
          Effect.timeout("30 seconds"),
          Effect.orElseSucceed((): Array<number | null> => [])
        )
        checks.equal("children that exited with their own code during the storm", codes.filter((c, i) => c === i + 3).length, n.children)
        const during = load.accepted() - acceptedBefore
        checks.that(during > 0, "the agenda accepted no tasklet during the storm: it was not saturated")
        yield* load.stop
        yield* loop.quit
        const stopped = yield* loop.awaitStop
        const total = stopped.agenda.stats.total
        checks.that(total.balanced, "agenda accounting does not add up")
        checks.equal("accepted tasklets that ended", load.endedTotal(), load.accepted())
        checks.equal("tasklets completed", load.ended.Completed, load.accepted())
        const after = LinuxPlatform.signalStats()
        return {
          sendMillis,
          countMillis,
          tasklets: load.accepted(),
          taskletsDuringStorm: during,
          viaSignalfd: after.viaSignalfd - before.viaSignalfd,
          viaForwarding: after.viaForwarding - before.viaForwarding,
          backpressureWaits: stopped.loop.backpressureWaits,
          dispatchMaxMs: stopped.loop.dispatchLatency.max
        }
      }))

      // ---- phase 2: SIGCHLD claimed through the portable layer, flooded while children exit
      const chldArrived: Record<string, number> = {}
      let chldSent = 0
      const phase2 = yield* Effect.scoped(Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const agenda = yield* Agenda.make({ workers: 2 })
        const loop = yield* EventLoop.make({ signals: ["SIGCHLD"], defaultBindings: false }).pipe(
          Effect.provideService(Platform.Platform, platform),
          Effect.provideService(Agenda.Agenda, agenda)
        )
        yield* counter(loop, chldArrived)
        const children = yield* Effect.forkScoped(
          Effect.forEach(Array.from({ length: n.children }, (_, i) => i + 10), child, { concurrency: "unbounded" })
        )
        for (let i = 0; i < n.chld; i++) {
          yield* raise("SIGCHLD", stats)
          chldSent++
          if (i % n.burst === n.burst - 1) yield* nextTurn
        }
        const codes = yield* Fiber.join(children).pipe(
          Effect.timeout("30 seconds"),
          Effect.orElseSucceed((): Array<number | null> => [])
        )
        checks.equal("children that exited with their own code while SIGCHLD was claimed", codes.filter((c, i) => c === i + 10).length, n.children)
        checks.that(yield* waitFor(() => (chldArrived.SIGCHLD ?? 0) >= 1, "10 seconds"), "no claimed SIGCHLD arrived")
        yield* loop.quit
        yield* loop.awaitStop
        return {}
      }))

      let sentTotal = 0
      let arrivedTotal = 0
      let lost = 0
      for (const name of REALTIME) {
        sentTotal += sent[name] ?? 0
        arrivedTotal += arrived[name] ?? 0
        lost += Math.max(0, (sent[name] ?? 0) - (arrived[name] ?? 0))
        checks.that((arrived[name] ?? 0) <= (sent[name] ?? 0), `${name} arrived more often than sent`)
      }
      for (const name of STANDARD) {
        sentTotal += sent[name] ?? 0
        arrivedTotal += arrived[name] ?? 0
        if ((arrived[name] ?? 0) === 0) lost++
      }
      sentTotal += chldSent
      arrivedTotal += chldArrived.SIGCHLD ?? 0
      if ((chldArrived.SIGCHLD ?? 0) === 0) lost++
      const realtimeSent = REALTIME.reduce((acc, name) => acc + (sent[name] ?? 0), 0)
      const realtimeArrived = REALTIME.reduce((acc, name) => acc + (arrived[name] ?? 0), 0)
      return {
        sent: sentTotal,
        arrived: arrivedTotal,
        lost,
        violations: checks.list,
        figures: {
          realtimeSent,
          realtimeCounted: realtimeArrived,
          ...Object.fromEntries(STANDARD.map((name) => [`${name}Sent`, sent[name] ?? 0])),
          ...Object.fromEntries(STANDARD.map((name) => [`${name}Arrived`, arrived[name] ?? 0])),
          portableSigchldSent: chldSent,
          portableSigchldArrived: chldArrived.SIGCHLD ?? 0,
          killRetriesEagain: stats.eagain,
          stormSendMs: Math.round(phase1.sendMillis),
          stormCountedMs: Math.round(phase1.countMillis),
          viaSignalfd: phase1.viaSignalfd,
          viaForwarding: phase1.viaForwarding,
          taskletsRun: phase1.tasklets,
          taskletsDuringStorm: phase1.taskletsDuringStorm,
          loopBackpressureWaits: phase1.backpressureWaits,
          dispatchMaxMs: Number(phase1.dispatchMaxMs.toFixed(2)),
          ...phase2
        }
      }
    })
})
