// Tasklets that suspend: each awaits one resolved promise, or is a
// three-step generator with one `Effect.yieldNow`. 4 workers (concurrency 4),
// mixed priorities wherever the subject has them. The trivial synchronous
// case is the throughput suite's.
import { Agenda } from "@refpersys/core"
import { Effect } from "effect"
import PQueue from "p-queue"
import { clock, interleave, perSecond, rows } from "./lib.mjs"

const CONCURRENCY = 4
const levels = ["High", "Normal", "Low"]
const numeric = [1, 0, -1]

// One shared, already resolved promise: what is measured is the suspension
// and the resumption, not the promise.
const resolved = Promise.resolve()
const awaitOne = Effect.promise(() => resolved)

let steps = 0
const step = Effect.sync(() => {
  steps++
})
// Three steps, with a yield to the scheduler after the first.
const generator = Effect.gen(function*() {
  yield* step
  yield* Effect.yieldNow
  yield* step
  yield* step
})

const agenda = (task) => (n) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const agenda = yield* Agenda.make({ workers: CONCURRENCY, capacity: n })
    const t0 = clock()
    for (let i = 0; i < n; i++) agenda.unsafeSubmit(task, { priority: levels[i % 3] })
    yield* agenda.whenIdle
    return perSecond(n, t0)
  })))

const forEach = (task) => (n) => {
  const items = new Array(n).fill(0)
  const f = () => task
  return Effect.runPromise(Effect.suspend(() => {
    const t0 = clock()
    return Effect.map(Effect.forEach(items, f, { concurrency: CONCURRENCY, discard: true }), () => perSecond(n, t0))
  }))
}

const pQueue = async (n) => {
  const queue = new PQueue({ concurrency: CONCURRENCY })
  const task = async () => {
    await resolved
  }
  const t0 = clock()
  for (let i = 0; i < n; i++) queue.add(task, { priority: numeric[i % 3] })
  await queue.onIdle()
  return perSecond(n, t0)
}

const S = {
  agendaPromise: "Agenda.unsafeSubmit, await one promise",
  forEachPromise: "Effect.forEach (concurrency 4), await one promise",
  pqPromise: "p-queue (priorities), await one promise",
  agendaGen: "Agenda.unsafeSubmit, generator",
  forEachGen: "Effect.forEach (concurrency 4), generator"
}

export default {
  name: "tasklets",
  title: "Tasklets that suspend: an awaited promise, a generator with a yield",
  method: "N tasks submitted in one synchronous loop and timed until the last ended, as in the throughput suite, " +
    "priorities round-robin High/Normal/Low where the subject has them. *Await one promise*: " +
    "`Effect.promise(() => resolved)` on one shared resolved promise (`async () => { await resolved }` for " +
    "p-queue). *Generator*: `Effect.gen` of three `Effect.sync` steps with one `Effect.yieldNow` after the " +
    "first. The peer is `Effect.forEach(items, () => task, { concurrency: 4, discard: true })` over the same " +
    "effect. Fresh queue each round, subjects rotate, one warm-up round; ratios per round, of wall-clock rates " +
    "(the targets) and of rates per CPU-second of the process.",
  run: async ({ quick, rounds, progress }) => {
    const n = quick ? 20_000 : 50_000
    const subjects = [
      { name: S.agendaPromise, run: () => agenda(awaitOne)(n) },
      { name: S.forEachPromise, run: () => forEach(awaitOne)(n) },
      { name: S.pqPromise, run: () => pQueue(n) },
      { name: S.agendaGen, run: () => agenda(generator)(n) },
      { name: S.forEachGen, run: () => forEach(generator)(n) }
    ]
    const values = await interleave({ subjects, rounds, warmup: 1, progress, label: "tasklets" })
    const r = rows("tasklets", values)
    const metric = `tasks/s, ${n.toLocaleString("en-US")} tasks`
    // Targets on wall time; the CPU-time ratio beside each is what a loaded
    // machine distorts least.
    const cmp = (a, b, target) => [
      r.compare(a, b, "value", { label: "tasks/s ratio", target }),
      r.compare(a, b, "cpu", { label: "tasks per CPU-second ratio" })
    ]
    return [
      ...Object.values(S).map((s) => r.measure(s, "value", "tasks/s", { metric })),
      ...cmp(S.agendaPromise, S.forEachPromise, { op: ">=", value: 1 }),
      ...cmp(S.agendaPromise, S.pqPromise, { op: ">=", value: 5 }),
      ...cmp(S.agendaGen, S.forEachGen, { op: ">=", value: 1 })
    ]
  }
}
