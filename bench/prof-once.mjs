import { Effect } from "effect"
import { Agenda } from "@refpersys/core"
const levels = ["High", "Normal", "Low"]
const n = 300000
Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const agenda = yield* Agenda.make({ workers: 4, capacity: n })
  const t0 = performance.now()
  for (let i = 0; i < n; i++) agenda.unsafeSubmit(Effect.void, { priority: levels[i % 3] })
  yield* agenda.whenIdle
  console.log(Math.round(n / ((performance.now() - t0) / 1000)), "/s")
})))
