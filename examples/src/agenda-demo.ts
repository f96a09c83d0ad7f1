/**
 * The agenda on its own (no event loop): four workers serve a synthetic
 * workload at three priorities, a GC barrier runs half-way, then the agenda
 * quits and prints its final statistics. After a build:
 *
 *   node examples/dist/agenda-demo.js           # 4 seconds, status line on a TTY
 *   node examples/dist/agenda-demo.js --seconds 10 --workers 8 --rate 5000
 *
 * Ctrl-C quits early (draining what was accepted); a second Ctrl-C exits now.
 */
import { Agenda, type AgendaStats, PriorityScheduler } from "@refpersys/core"
import { Deferred, Duration, Effect, Fiber, Schedule } from "effect"

const argValue = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return fallback
  const value = Number(process.argv[i + 1])
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`agenda-demo: --${name} needs a positive number, got ${process.argv[i + 1] ?? "nothing"}\n`)
    process.exit(2)
  }
  return value
}

const seconds = argValue("seconds", 4)
const workers = argValue("workers", 4)
const rate = argValue("rate", 3_000)

/** A little CPU work, so tasklets take measurable time. */
const spin = (iterations: number) =>
  Effect.sync(() => {
    let x = 0
    for (let i = 0; i < iterations; i++) x = (x * 31 + i) | 0
    return x
  })

const mix = [
  { priority: "High" as const, share: 1, work: 2_000, label: "answer a request" },
  { priority: "Normal" as const, share: 4, work: 10_000, label: "index a page" },
  { priority: "Low" as const, share: 10, work: 50_000, label: "compact storage" }
]

const line = (stats: AgendaStats.AgendaStats, elapsed: number) => {
  const p = stats.byPriority
  const busy = stats.workers.filter((w) => w.state === "Run").length
  const done = (s: AgendaStats.PriorityStats) => s.completed + s.failed
  return `t=${elapsed.toFixed(1)}s  done H/N/L ${done(p.High)}/${done(p.Normal)}/${done(p.Low)}  ` +
    `queued H/N/L ${p.High.queued}/${p.Normal.queued}/${p.Low.queued}  ` +
    `mean wait H ${p.High.waitTime.mean.toFixed(2)}ms L ${p.Low.waitTime.mean.toFixed(2)}ms  ` +
    `workers busy ${busy}/${stats.workers.length}  gc ${stats.gcCycles}`
}

const table = (stats: AgendaStats.AgendaStats) => {
  const rows = (["High", "Normal", "Low"] as const).map((name) => {
    const s = stats.byPriority[name]
    return {
      priority: name,
      submitted: s.submitted,
      completed: s.completed,
      failed: s.failed,
      interrupted: s.interrupted,
      dropped: s.dropped,
      obsolete: s.obsolete,
      "mean wait ms": Number(s.waitTime.mean.toFixed(3)),
      "max wait ms": Number(s.waitTime.max.toFixed(3)),
      "mean run ms": Number(s.runTime.mean.toFixed(3))
    }
  })
  console.table(rows)
}

const program = Effect.scoped(Effect.gen(function*() {
  const start = performance.now()
  const agenda = yield* Agenda.make({ name: "demo", workers, capacity: 5_000 })
  const stop = yield* Deferred.make<"time" | "signal">()
  let interrupts = 0
  process.on("SIGINT", () => {
    interrupts++
    if (interrupts === 1) Deferred.doneUnsafe(stop, Effect.succeed("signal"))
    else Effect.runFork(agenda.exit)
  })
  const tty = process.stdout.isTTY === true
  console.log(
    `agenda demo: ${workers} workers, ${seconds}s of mixed-priority load at ~${rate} tasklets/s, double in the middle third (Ctrl-C to quit early)`
  )

  // Producer: every 10 ms, rate/100 tasklets in the mix's proportions; the
  // middle third runs at double rate so queues build and priorities show.
  // It runs at High scheduling priority so it is not starved by the work.
  // Low tasklets become obsolete if not started within a second.
  const perRound = Math.max(1, Math.round(rate / 100))
  const shares = mix.reduce((n, m) => n + m.share, 0)
  let round = 0
  const produce = Effect.suspend(() => {
    const t = (performance.now() - start) / 1000
    const surge = t > seconds / 3 && t < (2 * seconds) / 3 ? 2 : 1
    round++
    return Effect.forEach(mix, ({ label, priority, share, work }) => {
      const count = Math.max(share > 1 || round % 2 === 0 ? 1 : 0, Math.round((perRound * surge * share) / shares))
      return Effect.forEach(Array.from({ length: count }), () =>
        agenda.submit(spin(work), {
          priority,
          label,
          ...(priority === "Low" ? { obsoleteAfter: "1 second" } : {})
        }), { discard: true })
    }, { discard: true })
  })
  const producer = yield* Effect.forkChild(
    Effect.repeat(produce, Schedule.spaced("10 millis")).pipe(PriorityScheduler.withPriority("High"))
  )

  const status = yield* Effect.forkChild(Effect.repeat(
    Effect.flatMap(agenda.stats, (stats) =>
      Effect.sync(() => {
        const text = line(stats, (performance.now() - start) / 1000)
        if (tty) process.stdout.write(`\r\x1b[2K${text}`)
        else console.log(text)
      })),
    Schedule.spaced(tty ? "200 millis" : "1 second")
  ))

  const gc = yield* Effect.forkChild(Effect.gen(function*() {
    yield* Effect.sleep(Duration.millis(seconds * 500))
    const t0 = performance.now()
    yield* agenda.requestGc(Effect.sync(() => {
      const msg = `GC barrier: all ${workers} workers parked, collector ran`
      if (tty) process.stdout.write(`\r\x1b[2K${msg}\n`)
      else console.log(msg)
    }))
    const msg = `GC barrier took ${(performance.now() - t0).toFixed(2)} ms end to end`
    if (tty) process.stdout.write(`\r\x1b[2K${msg}\n`)
    else console.log(msg)
  }))

  const reason = yield* Effect.race(Deferred.await(stop), Effect.as(Effect.sleep(Duration.seconds(seconds)), "time" as const))
  yield* Fiber.interrupt(producer)
  yield* Fiber.interrupt(gc)
  if (tty) process.stdout.write("\n")
  console.log(`${reason === "signal" ? "SIGINT" : "time is up"}: quitting, draining what was accepted...`)
  const report = yield* agenda.quit({ timeout: "10 seconds" })
  yield* Fiber.interrupt(status)
  const t = report.stats.total
  console.log(`stopped by ${report.mode}${report.timedOut ? " (drain timed out)" : ""}; dropped ${report.dropped}, interrupted ${report.interrupted}`)
  table(report.stats)
  const elapsed = (performance.now() - start) / 1000
  console.log(`throughput: ${Math.round((t.completed + t.failed) / elapsed)} tasklets/s over ${elapsed.toFixed(1)} s`)
  console.log(
    `accounting: submitted ${t.submitted} = completed ${t.completed} + failed ${t.failed} + interrupted ${t.interrupted} + dropped ${t.dropped} + obsolete ${t.obsolete}: ${t.balanced ? "balanced" : "UNBALANCED"}`
  )
  if (!t.balanced) return yield* Effect.die(new Error("agenda accounting does not add up"))
}))

Effect.runPromise(program.pipe(Effect.provide(PriorityScheduler.layer()))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
