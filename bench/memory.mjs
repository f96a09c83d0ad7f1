// Memory: heap per queued task with N tasks waiting behind 4 busy workers.
import { Agenda, PromiseAgenda } from "@refpersys/core"
import { Effect, Exit, Fiber, Queue, Scope } from "effect"
import fastq from "fastq"
import PQueue from "p-queue"
import { collect, interleave, rows, withTarget } from "./lib.mjs"

const CONCURRENCY = 4
const levels = ["High", "Normal", "Low"]
const numeric = [1, 0, -1]

/** Heap bytes per item, measured after a full GC, with the items still queued. */
const perItem = (before, n) => {
  collect()
  return (process.memoryUsage().heapUsed - before) / n
}
const baseline = () => {
  collect()
  return process.memoryUsage().heapUsed
}

const agenda = (n) =>
  Effect.runPromise(Effect.gen(function*() {
    const scope = yield* Scope.make()
    const agenda = yield* Scope.provide(Agenda.make({ workers: CONCURRENCY, capacity: n, onClose: "exit" }), scope)
    // One never-ending tasklet per worker keeps the rest queued.
    for (let i = 0; i < CONCURRENCY; i++) agenda.unsafeSubmit(Effect.never, { priority: "High" })
    yield* Effect.yieldNow
    const task = Effect.void
    const before = baseline()
    for (let i = 0; i < n; i++) agenda.unsafeSubmit(task, { priority: levels[i % 3] })
    const bytes = perItem(before, n)
    yield* Scope.close(scope, Exit.void)
    return bytes
  }))

const promiseAgenda = async (n) => {
  const queue = PromiseAgenda.make({ workers: CONCURRENCY, capacity: n })
  let release
  const gate = new Promise((resolve) => (release = resolve))
  for (let i = 0; i < CONCURRENCY; i++) queue.add(() => gate, { priority: 1 })
  await new Promise((resolve) => setImmediate(resolve))
  const task = async () => {}
  // The promises `add` returns are kept, as a caller would; the array is
  // allocated before the baseline, so only the promises count.
  const promises = new Array(n).fill(0)
  const before = baseline()
  for (let i = 0; i < n; i++) promises[i] = queue.add(task, { priority: numeric[i % 3] })
  const bytes = perItem(before, n)
  // Drained rather than dropped: a drop rejects every promise with an error.
  release()
  await queue.onIdle()
  await queue.close()
  return bytes
}

const pQueue = (withPriorities) => async (n) => {
  const queue = new PQueue({ concurrency: CONCURRENCY })
  let release
  const gate = new Promise((resolve) => (release = resolve))
  for (let i = 0; i < CONCURRENCY; i++) queue.add(() => gate)
  await new Promise((resolve) => setImmediate(resolve))
  const task = async () => {}
  const promises = new Array(n).fill(0)
  const before = baseline()
  // Added level by level, highest first: p-queue inserts an out-of-order
  // priority with an array splice, which at a million entries takes minutes.
  // Each entry costs the same either way.
  if (withPriorities) for (let i = 0; i < n; i++) promises[i] = queue.add(task, { priority: numeric[Math.floor((3 * i) / n)] })
  else for (let i = 0; i < n; i++) promises[i] = queue.add(task)
  const bytes = perItem(before, n)
  queue.clear()
  release()
  await queue.onIdle()
  return bytes
}

const fastqCallback = async (n) => {
  let release
  const gate = new Promise((resolve) => (release = resolve))
  const queue = fastq((item, done) => (item === -1 ? gate.then(() => done(null)) : done(null)), CONCURRENCY)
  for (let i = 0; i < CONCURRENCY; i++) queue.push(-1)
  const before = baseline()
  for (let i = 0; i < n; i++) queue.push(i)
  const bytes = perItem(before, n)
  queue.kill()
  release()
  return bytes
}

const effectQueue = (n) =>
  Effect.runPromise(Effect.gen(function*() {
    const queue = yield* Queue.unbounded()
    const task = Effect.void
    const before = baseline()
    for (let i = 0; i < n; i++) Queue.offerUnsafe(queue, task)
    const bytes = perItem(before, n)
    yield* Queue.shutdown(queue)
    return bytes
  }))

const S = {
  agenda: "Agenda.unsafeSubmit",
  promise: "PromiseAgenda.add",
  pqPrio: "p-queue (priorities)",
  pq: "p-queue (no priorities)",
  fastq: "fastq (callback)",
  queue: "Effect Queue.unbounded"
}

export default {
  name: "memory",
  title: "Memory: heap per queued task",
  method: "4 workers (or the concurrency of 4) held busy by never-ending tasks, then N trivial tasks queued " +
    "at round-robin priorities; `heapUsed` after `global.gc()` minus `heapUsed` before, divided by N. The task " +
    "itself is one shared function or effect, so the figure is the queue's own cost per entry (for the promise " +
    "APIs, including the promise `add` returns, which the caller keeps). Effect `Queue.unbounded` holding the same effects is shown for " +
    "scale (it stores the bare effect, with no handle or bookkeeping). p-queue with priorities gets the " +
    "levels in descending order (an out-of-order priority costs it an array splice, minutes at a million " +
    "entries; the entry is the same size). One warm-up round; the figures barely move between rounds.",
  run: async ({ quick, rounds, progress }) => {
    const n = quick ? 100_000 : 1_000_000
    const subjects = [
      { name: S.agenda, run: () => agenda(n) },
      { name: S.promise, run: () => promiseAgenda(n) },
      { name: S.pqPrio, run: () => pQueue(true)(n) },
      { name: S.pq, run: () => pQueue(false)(n) },
      { name: S.fastq, run: () => fastqCallback(n) },
      { name: S.queue, run: () => effectQueue(n) }
    ]
    const values = await interleave({ subjects, rounds: quick ? 1 : Math.min(rounds, 2), warmup: 1, progress, label: "memory" })
    const r = rows("memory", values)
    const metric = `heap per queued task, ${n.toLocaleString("en-US")} queued`
    const measured = Object.values(S).map((s) => r.measure(s, "value", "bytes", { metric }))
    const cmp = (a, b, target) => r.compare(a, b, "value", { label: `${metric} ratio`, target })
    return [
      ...measured.map((row) => (row.subject === S.agenda ? withTarget(row, { op: "<=", value: 100 }) : row)),
      cmp(S.agenda, S.pqPrio, { op: "<=", value: 0.25 }),
      cmp(S.agenda, S.pq, { op: "<=", value: 0.25 }),
      cmp(S.promise, S.pqPrio)
    ]
  }
}
