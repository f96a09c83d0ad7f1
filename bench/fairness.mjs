// Fairness: a 5 ms timeout scheduled just after a saturating load was
// submitted (20,000 tasks of 10 µs each, concurrency 4). How late does it fire?
import { Agenda, EventLoop } from "@refpersys/core"
import { LinuxPlatform } from "@refpersys/platform-linux"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Queue } from "effect"
import PQueue from "p-queue"
import { interleave, rows, spin, withTarget } from "./lib.mjs"

const CONCURRENCY = 4
const TASKS = 20_000
const BUSY_US = 10
const TIMEOUT_MS = 5

/**
 * Lateness: firing time minus deadline (the moment the timeout was scheduled
 * plus 5 ms). Load: from the first submission until the queue was idle. ms.
 */
const result = (t0, scheduledAt, firedAt, loadDoneAt) => ({
  lateness: firedAt - (scheduledAt + TIMEOUT_MS),
  load: loadDoneAt - t0
})

const work = () => spin(BUSY_US)

/** The library's own path: Timeouts on the event loop (linux-native timerfd), agenda saturated. */
const agendaTimeouts = () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const loop = yield* EventLoop.make({ signals: [], defaultBindings: false })
    const agenda = yield* Agenda.Agenda
    const fired = yield* Deferred.make()
    const task = Effect.sync(work)
    const t0 = performance.now()
    for (let i = 0; i < TASKS; i++) agenda.unsafeSubmit(task, { priority: "Low" })
    const scheduledAt = performance.now()
    yield* loop.timeouts.after(Duration.millis(TIMEOUT_MS), Effect.suspend(() => Deferred.succeed(fired, performance.now())))
    yield* agenda.whenIdle
    const loadDoneAt = performance.now()
    const firedAt = yield* Deferred.await(fired)
    return result(t0, scheduledAt, firedAt, loadDoneAt)
  })).pipe(Effect.provide(Layer.merge(LinuxPlatform.layer(), Agenda.layer({ workers: CONCURRENCY, capacity: TASKS })))))

/** The agenda with a plain Node timer. */
const agendaSetTimeout = () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const agenda = yield* Agenda.make({ workers: CONCURRENCY, capacity: TASKS })
    const task = Effect.sync(work)
    const t0 = performance.now()
    for (let i = 0; i < TASKS; i++) agenda.unsafeSubmit(task, { priority: "Low" })
    const scheduledAt = performance.now()
    let firedAt = 0
    const fired = new Promise((resolve) => setTimeout(() => resolve((firedAt = performance.now())), TIMEOUT_MS))
    yield* agenda.whenIdle
    const loadDoneAt = performance.now()
    yield* Effect.promise(() => fired)
    return result(t0, scheduledAt, firedAt, loadDoneAt)
  })))

const pQueue = async () => {
  const queue = new PQueue({ concurrency: CONCURRENCY })
  const task = async () => work()
  const t0 = performance.now()
  for (let i = 0; i < TASKS; i++) queue.add(task, { priority: -1 })
  const scheduledAt = performance.now()
  let firedAt = 0
  const fired = new Promise((resolve) => setTimeout(() => resolve((firedAt = performance.now())), TIMEOUT_MS))
  await queue.onIdle()
  const loadDoneAt = performance.now()
  await fired
  return result(t0, scheduledAt, firedAt, loadDoneAt)
}

const plainJs = async () => {
  const tasks = []
  for (let i = 0; i < TASKS; i++) tasks.push(async () => work())
  let next = 0
  const t0 = performance.now()
  const scheduledAt = t0
  let firedAt = 0
  const fired = new Promise((resolve) => setTimeout(() => resolve((firedAt = performance.now())), TIMEOUT_MS))
  const loop = async () => {
    while (next < tasks.length) await tasks[next++]()
  }
  const loops = []
  for (let i = 0; i < CONCURRENCY; i++) loops.push(loop())
  await Promise.all(loops)
  const loadDoneAt = performance.now()
  await fired
  return result(t0, scheduledAt, firedAt, loadDoneAt)
}

/** A plain Effect pool on Effect's default scheduler, with `Effect.sleep` as the timeout. */
const effectPool = () =>
  Effect.runPromise(Effect.gen(function*() {
    const queue = yield* Queue.unbounded()
    const finished = yield* Deferred.make()
    let done = 0
    const count = Effect.sync(() => {
      if (++done === TASKS) Deferred.doneUnsafe(finished, Exit.void)
    })
    const worker = Effect.forever(Effect.flatMap(Queue.take(queue), (effect) => Effect.andThen(effect, count)))
    const fibers = []
    for (let i = 0; i < CONCURRENCY; i++) fibers.push(yield* Effect.forkChild(worker))
    const task = Effect.sync(work)
    const t0 = performance.now()
    for (let i = 0; i < TASKS; i++) Queue.offerUnsafe(queue, task)
    const scheduledAt = performance.now()
    const sleeper = yield* Effect.forkChild(Effect.as(Effect.sleep(Duration.millis(TIMEOUT_MS)), undefined).pipe(
      Effect.map(() => performance.now())
    ))
    yield* Deferred.await(finished)
    const loadDoneAt = performance.now()
    const firedAt = yield* Fiber.join(sleeper)
    yield* Fiber.interruptAll(fibers)
    return result(t0, scheduledAt, firedAt, loadDoneAt)
  }))

const S = {
  timeouts: "Agenda + Timeouts.after (EventLoop)",
  setTimeout: "Agenda + setTimeout",
  pq: "p-queue + setTimeout",
  plain: "plain async loops + setTimeout",
  pool: "Effect Queue pool + Effect.sleep"
}

export default {
  name: "fairness",
  title: "Fairness: a 5 ms timeout while the queue is saturated",
  method: `${TASKS.toLocaleString("en-US")} tasks of ${BUSY_US} µs busy work submitted at once (concurrency 4), then ` +
    `a ${TIMEOUT_MS} ms timeout scheduled. Lateness: firing time minus deadline (the scheduling time + ${TIMEOUT_MS} ms), ` +
    "in ms, one sample per round " +
    "(median and range over rounds); the load's own duration is shown beside it. For the library, the timeout " +
    "goes through `Timeouts` on the event loop (timerfd on the linux-native platform); the agenda runs its " +
    "workers on a `PriorityScheduler`, whose slices end after 0.1 ms (its default) so timers and I/O get their turn. " +
    "The Effect pool runs on Effect 4's default scheduler, which schedules each fiber's resumptions with `setImmediate`, so timers run between them.",
  run: async ({ rounds, progress }) => {
    const subjects = [
      { name: S.timeouts, run: agendaTimeouts },
      { name: S.setTimeout, run: agendaSetTimeout },
      { name: S.pq, run: pQueue },
      { name: S.plain, run: plainJs },
      { name: S.pool, run: effectPool }
    ]
    const values = await interleave({ subjects, rounds, warmup: 1, progress, label: "fairness" })
    const r = rows("fairness", values)
    const out = []
    for (const s of Object.values(S)) {
      const late = r.measure(s, "lateness", "ms", { metric: "timeout lateness" })
      // "Fires within 10 ms": held to the worst round, not the median.
      out.push(s === S.timeouts || s === S.setTimeout ? withTarget(late, { op: "<=", value: 10, on: "max" }) : late)
      out.push(r.measure(s, "load", "ms", { metric: "load duration" }))
    }
    return out
  }
}
