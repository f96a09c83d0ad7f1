// Throughput: N trivial tasks, concurrency 4, submitted all at once and timed
// until the last one ends. Mixed priorities (round-robin High, Normal, Low)
// wherever the subject has priorities.
import { Agenda, PromiseAgenda } from "@refpersys/core"
import { Deferred, Effect, Exit, Fiber, Queue } from "effect"
import fastq from "fastq"
import PQueue from "p-queue"
import { clock, interleave, perSecond, rows } from "./lib.mjs"

const CONCURRENCY = 4
const levels = ["High", "Normal", "Low"]
const numeric = [1, 0, -1]

// The trivial task: a closure that does nothing, in each subject's own form.
const task = Effect.sync(() => {})
const asyncTask = async () => {}

/** The agenda, from Effect code, with the synchronous submit. */
const agendaUnsafeSubmit = (n) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const agenda = yield* Agenda.make({ workers: CONCURRENCY, capacity: n })
    const t0 = clock()
    for (let i = 0; i < n; i++) agenda.unsafeSubmit(task, { priority: levels[i % 3] })
    yield* agenda.whenIdle
    return perSecond(n, t0)
  })))

/** The agenda, from Effect code, with `yield* agenda.submit(...)`. */
const agendaSubmit = (n) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const agenda = yield* Agenda.make({ workers: CONCURRENCY, capacity: n })
    const t0 = clock()
    for (let i = 0; i < n; i++) yield* agenda.submit(task, { priority: levels[i % 3] })
    yield* agenda.whenIdle
    return perSecond(n, t0)
  })))

/** The Promise facade, used like p-queue. */
const promiseAgenda = async (n) => {
  const queue = PromiseAgenda.make({ workers: CONCURRENCY, capacity: n })
  const t0 = clock()
  for (let i = 0; i < n; i++) queue.add(asyncTask, { priority: numeric[i % 3] })
  await queue.onIdle()
  const result = perSecond(n, t0)
  await queue.close()
  return result
}

const pQueue = (withPriorities) => async (n) => {
  const queue = new PQueue({ concurrency: CONCURRENCY })
  const t0 = clock()
  if (withPriorities) for (let i = 0; i < n; i++) queue.add(asyncTask, { priority: numeric[i % 3] })
  else for (let i = 0; i < n; i++) queue.add(asyncTask)
  await queue.onIdle()
  return perSecond(n, t0)
}

/** fastq's own API: a worker with a callback, tasks pushed with a completion callback. */
const fastqCallback = (n) =>
  new Promise((resolve) => {
    const queue = fastq((_item, done) => done(null), CONCURRENCY)
    let left = n
    const t0 = clock()
    // fastq runs a worker synchronously inside `push` while below its
    // concurrency, so `drain` can fire before the last push: count instead.
    const finished = () => {
      if (--left === 0) resolve(perSecond(n, t0))
    }
    for (let i = 0; i < n; i++) queue.push(i, finished)
  })

const fastqPromise = async (n) => {
  const queue = fastq.promise(async (_item) => {}, CONCURRENCY)
  const t0 = clock()
  for (let i = 0; i < n; i++) queue.push(i)
  await queue.drained()
  return perSecond(n, t0)
}

/** A plain Effect pool: one unbounded Queue of effects, 4 fibers taking from it, FIFO. */
const effectPool = (unsafe) => (n) =>
  Effect.runPromise(Effect.gen(function*() {
    const queue = yield* Queue.unbounded()
    const finished = yield* Deferred.make()
    let done = 0
    const count = Effect.sync(() => {
      if (++done === n) Deferred.doneUnsafe(finished, Exit.void)
    })
    const worker = Effect.forever(Effect.flatMap(Queue.take(queue), (effect) => Effect.andThen(effect, count)))
    const fibers = []
    for (let i = 0; i < CONCURRENCY; i++) fibers.push(yield* Effect.forkChild(worker))
    const t0 = clock()
    if (unsafe) for (let i = 0; i < n; i++) Queue.offerUnsafe(queue, task)
    else for (let i = 0; i < n; i++) yield* Queue.offer(queue, task)
    yield* Deferred.await(finished)
    const result = perSecond(n, t0)
    yield* Fiber.interruptAll(fibers)
    return result
  }))

/** Effect's own bounded-concurrency loop over the same effects: no queue, no priorities. */
const forEach = (n) => {
  const items = new Array(n).fill(0)
  const f = () => task
  return Effect.runPromise(Effect.suspend(() => {
    const t0 = clock()
    return Effect.map(Effect.forEach(items, f, { concurrency: CONCURRENCY, discard: true }), () => perSecond(n, t0))
  }))
}

/** The practical limit: three arrays (one per level) drained by 4 async loops, no bookkeeping. */
const plainJs = async (n) => {
  const queues = [[], [], []]
  const heads = [0, 0, 0]
  const take = () => {
    for (let l = 0; l < 3; l++) if (heads[l] < queues[l].length) return queues[l][heads[l]++]
    return undefined
  }
  const t0 = clock()
  for (let i = 0; i < n; i++) queues[i % 3].push(asyncTask)
  const loop = async () => {
    for (let t = take(); t !== undefined; t = take()) await t()
  }
  const loops = []
  for (let i = 0; i < CONCURRENCY; i++) loops.push(loop())
  await Promise.all(loops)
  return perSecond(n, t0)
}

const S = {
  unsafe: "Agenda.unsafeSubmit",
  submit: "Agenda.submit",
  promise: "PromiseAgenda.add",
  pqPrio: "p-queue (priorities)",
  pq: "p-queue (no priorities)",
  fastq: "fastq (callback)",
  fastqP: "fastq.promise",
  forEach: "Effect.forEach (concurrency 4)",
  poolUnsafe: "Effect Queue pool (offerUnsafe)",
  pool: "Effect Queue pool (offer)",
  plain: "plain JS 3-level queue"
}

const subjects = (n) => [
  { name: S.unsafe, run: () => agendaUnsafeSubmit(n) },
  { name: S.submit, run: () => agendaSubmit(n) },
  { name: S.promise, run: () => promiseAgenda(n) },
  { name: S.pqPrio, run: () => pQueue(true)(n) },
  { name: S.pq, run: () => pQueue(false)(n) },
  { name: S.fastq, run: () => fastqCallback(n) },
  { name: S.fastqP, run: () => fastqPromise(n) },
  { name: S.forEach, run: () => forEach(n) },
  { name: S.poolUnsafe, run: () => effectPool(true)(n) },
  { name: S.pool, run: () => effectPool(false)(n) },
  { name: S.plain, run: () => plainJs(n) }
]

const sized = async (n, suite, { rounds, progress }, targets) => {
  const values = await interleave({ subjects: subjects(n), rounds, warmup: 1, progress, label: suite })
  const r = rows(suite, values)
  const measured = Object.values(S).map((s) =>
    r.measure(s, "value", "tasks/s", { metric: `throughput, ${n.toLocaleString("en-US")} tasks` }))
  return [...measured, ...targets(r)]
}

export default {
  name: "throughput",
  title: "Throughput: trivial tasks, concurrency 4, mixed priorities",
  method: "N trivial tasks (`Effect.sync(() => {})` for the agenda, `Effect.forEach` and the Effect pool, `async () => {}` for the " +
    "promise queues, a callback worker for fastq) submitted in one synchronous loop, timed from the first submission until the last task ended " +
    "(`whenIdle`, `onIdle`, `drain`); priorities round-robin High/Normal/Low where the subject has them. " +
    "`Effect.forEach(items, () => task, { concurrency: 4, discard: true })` is Effect 4's own bounded-concurrency loop " +
    "(no queue, no priorities; the items array is built before the clock starts); the Effect pool is an unbounded " +
    "`Queue` drained by 4 fibers; the plain JS queue is three arrays drained by 4 async loops. Each " +
    "round builds a fresh queue; subjects rotate order each round, one warm-up round, no forced GC between " +
    "them. Ratios are computed per round between subjects that ran in that round, of wall-clock rates (the " +
    "targets) and, for the forEach and plain JS comparisons, also of rates per CPU-second of the process.",
  run: async ({ quick, rounds, progress }) => {
    const large = await sized(100_000, "throughput 100k", { rounds, progress }, (r) => {
      const t = "throughput, 100,000 tasks"
      const cmp = (a, b, target) => r.compare(a, b, "value", { label: `${t} ratio`, target })
      return [
        cmp(S.unsafe, S.forEach, { op: ">=", value: 1.2 }),
        r.compare(S.unsafe, S.forEach, "cpu", { label: `${t} per CPU-second ratio` }),
        cmp(S.unsafe, S.plain, { op: ">=", value: 0.3 }),
        r.compare(S.unsafe, S.plain, "cpu", { label: `${t} per CPU-second ratio` }),
        cmp(S.submit, S.forEach),
        cmp(S.unsafe, S.pqPrio, { op: ">=", value: 10 }),
        cmp(S.unsafe, S.pq, { op: ">=", value: 2.5 }),
        cmp(S.unsafe, S.poolUnsafe, { op: ">=", value: 1 }),
        cmp(S.submit, S.pool, { op: ">=", value: 1 }),
        cmp(S.submit, S.pqPrio, { op: ">=", value: 10 }),
        cmp(S.submit, S.pq, { op: ">=", value: 2.5 }),
        cmp(S.promise, S.pqPrio),
        cmp(S.promise, S.pq),
        cmp(S.unsafe, S.fastq)
      ]
    })
    const small = await sized(10_000, "throughput 10k", { rounds: quick ? rounds : rounds * 2, progress }, (r) => {
      const t = "throughput, 10,000 tasks"
      const cmp = (a, b, target) => r.compare(a, b, "value", { label: `${t} ratio`, target })
      return [
        cmp(S.unsafe, S.forEach),
        cmp(S.unsafe, S.pqPrio, { op: ">=", value: 2 }),
        cmp(S.unsafe, S.pq, { op: ">=", value: 2 }),
        cmp(S.submit, S.pqPrio, { op: ">=", value: 2 }),
        cmp(S.submit, S.pq, { op: ">=", value: 2 }),
        cmp(S.promise, S.pq)
      ]
    })
    return [...large, ...small]
  }
}
