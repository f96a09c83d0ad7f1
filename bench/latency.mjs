// High-priority latency under saturation: 4 workers busy on 10,000 queued
// Low tasks; every 25th Low task, at the end of its body, submits a High
// task. Latency is from that submission to the High task's first line.
import { Agenda, PromiseAgenda } from "@refpersys/core"
import { Effect } from "effect"
import PQueue from "p-queue"
import { interleave, percentile, rows, spin, withTarget } from "./lib.mjs"

const CONCURRENCY = 4
const LOW = 10_000
const EVERY = 25
const FIRST = 1_000
const BUSY_US = 10

const trial = () => {
  const latencies = []
  let submittedAt = 0
  const startHigh = () => latencies.push((performance.now() - submittedAt) * 1000)
  const shouldSubmit = (i) => i >= FIRST && i % EVERY === 0
  const summary = () => ({ p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies) })
  return { startHigh, shouldSubmit, summary, mark: () => (submittedAt = performance.now()) }
}

const agenda = () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const agenda = yield* Agenda.make({ workers: CONCURRENCY, capacity: LOW })
    const t = trial()
    const high = Effect.sync(t.startHigh)
    const low = (i) =>
      Effect.suspend(() => {
        spin(BUSY_US)
        if (!t.shouldSubmit(i)) return Effect.void
        t.mark()
        return agenda.submit(high, { priority: "High" })
      })
    for (let i = 0; i < LOW; i++) yield* agenda.submit(low(i), { priority: "Low" })
    yield* agenda.whenIdle
    return t.summary()
  })))

const promiseAgenda = async () => {
  const queue = PromiseAgenda.make({ workers: CONCURRENCY, capacity: LOW })
  const t = trial()
  const low = (i) => async () => {
    spin(BUSY_US)
    if (t.shouldSubmit(i)) {
      t.mark()
      queue.add(t.startHigh, { priority: "High" })
    }
  }
  for (let i = 0; i < LOW; i++) queue.add(low(i), { priority: "Low" })
  await queue.onIdle()
  await queue.close()
  return t.summary()
}

const pQueue = async () => {
  const queue = new PQueue({ concurrency: CONCURRENCY })
  const t = trial()
  const high = async () => t.startHigh()
  const low = (i) => async () => {
    spin(BUSY_US)
    if (t.shouldSubmit(i)) {
      t.mark()
      queue.add(high, { priority: 1 })
    }
  }
  for (let i = 0; i < LOW; i++) queue.add(low(i), { priority: -1 })
  await queue.onIdle()
  return t.summary()
}

const S = { agenda: "Agenda.submit", promise: "PromiseAgenda.add", pq: "p-queue (priorities)" }

export default {
  name: "latency",
  title: "High-priority latency under saturation",
  method: `${LOW.toLocaleString("en-US")} Low tasks (each busy ${BUSY_US} µs) queued behind concurrency 4; from the ` +
    `${FIRST.toLocaleString("en-US")}th on, every ${EVERY}th Low task submits a High task at the end of its body ` +
    `(${(LOW - FIRST) / EVERY} samples per round). Latency: submission to the High task's first line, in µs. ` +
    "p50 and p99 are per round; the table shows their median and range over rounds, ratios per round.",
  run: async ({ rounds, progress }) => {
    const subjects = [
      { name: S.agenda, run: agenda },
      { name: S.promise, run: promiseAgenda },
      { name: S.pq, run: pQueue }
    ]
    const values = await interleave({ subjects, rounds, warmup: 1, progress, label: "latency" })
    const r = rows("latency", values)
    const measured = []
    for (const s of Object.values(S)) {
      for (const metric of ["p50", "p99", "max"]) {
        const row = r.measure(s, metric, "µs", { metric: `High latency ${metric}` })
        measured.push(s === S.agenda && metric === "p99" ? withTarget(row, { op: "<=", value: 1000 }) : row)
      }
    }
    const cmp = (a, b, metric, target) => r.compare(a, b, metric, { label: `High latency ${metric} ratio`, target })
    return [
      ...measured,
      cmp(S.agenda, S.pq, "p50", { op: "<=", value: 0.5 }),
      cmp(S.agenda, S.pq, "p99", { op: "<=", value: 1 }),
      cmp(S.promise, S.pq, "p50"),
      cmp(S.promise, S.pq, "p99")
    ]
  }
}
