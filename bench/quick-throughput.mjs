// Quick check of the agenda's headroom: N trivial tasklets, 4 workers,
// mixed priorities, and heap per queued tasklet. Run after `npm run build`:
//   node --expose-gc bench/quick-throughput.mjs
import { Effect, Exit, Scope } from "effect"
import { Agenda } from "@refpersys/core"

const levels = ["High", "Normal", "Low"]

const throughput = (n) =>
  Effect.scoped(Effect.gen(function*() {
    const agenda = yield* Agenda.make({ workers: 4, capacity: n })
    const t0 = performance.now()
    let last
    for (let i = 0; i < n; i++) {
      last = agenda.unsafeSubmit(Effect.void, { priority: levels[i % 3] })
    }
    yield* agenda.whenIdle
    const ms = performance.now() - t0
    const stats = yield* agenda.stats
    return { n, ms, perSecond: Math.round(n / (ms / 1000)), completed: stats.total.completed, last: last.outcome }
  }))

const memory = (n) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const agenda = yield* Scope.extend(Agenda.make({ workers: 4, capacity: n }), scope)
    // Keep workers busy on one blocking tasklet per worker so the rest stays queued.
    const gates = []
    for (let i = 0; i < 4; i++) gates.push(agenda.unsafeSubmit(Effect.never, { priority: "High" }))
    yield* Effect.yieldNow()
    global.gc?.()
    const before = process.memoryUsage().heapUsed
    const effect = Effect.void
    for (let i = 0; i < n; i++) agenda.unsafeSubmit(effect, { priority: levels[i % 3] })
    global.gc?.()
    const after = process.memoryUsage().heapUsed
    yield* agenda.exit
    yield* Scope.close(scope, Exit.void)
    return { n, bytesPerQueued: Math.round((after - before) / n) }
  })

const main = Effect.gen(function*() {
  for (const n of [10_000, 100_000, 100_000, 300_000]) console.log("throughput", yield* throughput(n))
  console.log("memory", yield* memory(1_000_000))
})
Effect.runPromise(main)
