// Event dispatch: N events from one producer to one handler.
import { Agenda, Event, EventLoop } from "@refpersys/core"
import { LinuxPlatform } from "@refpersys/platform-linux"
import { Deferred, Effect, Exit, Fiber, Layer, Queue, Stream } from "effect"
import { EventEmitter } from "node:events"
import { interleave, rows } from "./lib.mjs"

const CAPACITY = 4096
const perSecond = (n, t0) => n / ((performance.now() - t0) / 1000)
// Events are built before the clock starts and cycled (more of them than any
// queue holds), so the figure is the dispatch path's, not Schema's
// constructor's (which alone costs about as much as an EventEmitter dispatch).
const EVENTS = 8192
const events = []
for (let i = 0; i < EVENTS; i++) events.push(new Event.Command({ byte: 1, at: 0 }))
const event = (i) => events[i & (EVENTS - 1)]

/** Counts events; resolves `done` at the n-th. */
const counter = (n, done) => {
  let seen = 0
  return () => {
    if (++seen === n) Deferred.doneUnsafe(done, Exit.void)
  }
}

const eventLoop = (n) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const loop = yield* EventLoop.make({ signals: [], defaultBindings: false, capacity: CAPACITY })
    const done = yield* Deferred.make()
    const count = counter(n, done)
    yield* loop.register({
      explanation: "bench: count Command events",
      match: { _tag: "Command", byte: 1 },
      handle: () => Effect.sync(count)
    })
    const t0 = performance.now()
    const producer = yield* Effect.forkChild(Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* loop.post(event(i))
    }))
    yield* Deferred.await(done)
    const result = perSecond(n, t0)
    yield* Fiber.join(producer)
    return result
  })).pipe(Effect.provide(Layer.merge(LinuxPlatform.layer(), Agenda.layer()))))

const effectQueue = (bounded) => (n) =>
  Effect.runPromise(Effect.gen(function*() {
    const queue = yield* (bounded ? Queue.bounded(CAPACITY) : Queue.unbounded())
    const done = yield* Deferred.make()
    const count = counter(n, done)
    const consumer = yield* Effect.forkChild(Effect.forever(Effect.flatMap(Queue.take(queue), () => Effect.sync(count))))
    const t0 = performance.now()
    const producer = yield* Effect.forkChild(Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* Queue.offer(queue, event(i))
    }))
    yield* Deferred.await(done)
    const result = perSecond(n, t0)
    yield* Fiber.join(producer)
    yield* Fiber.interrupt(consumer)
    return result
  }))

/**
 * `onePerPull`: each side is `Stream.fromEffectRepeat(Queue.take(q))`, one
 * event per pull, as a platform source delivers them; otherwise
 * `Stream.fromQueue(q)`, which takes everything queued (up to the queue's
 * 4,096) in one pull.
 */
const streamMerge = (onePerPull) => (n) =>
  Effect.runPromise(Effect.gen(function*() {
    const a = yield* Queue.bounded(CAPACITY)
    const b = yield* Queue.bounded(CAPACITY)
    const done = yield* Deferred.make()
    const count = counter(n, done)
    const source = (queue) => (onePerPull ? Stream.fromEffectRepeat(Queue.take(queue)) : Stream.fromQueue(queue))
    const consumer = yield* Effect.forkChild(
      Stream.runForEach(Stream.merge(source(a), source(b)), () => Effect.sync(count))
    )
    const t0 = performance.now()
    const produce = (queue, k) =>
      Effect.forkChild(Effect.gen(function*() {
        for (let i = 0; i < k; i++) yield* Queue.offer(queue, event(i))
      }))
    const pa = yield* produce(a, Math.floor(n / 2))
    const pb = yield* produce(b, n - Math.floor(n / 2))
    yield* Deferred.await(done)
    const result = perSecond(n, t0)
    yield* Fiber.join(pa)
    yield* Fiber.join(pb)
    yield* Fiber.interrupt(consumer)
    return result
  }))

const eventEmitter = async (n) => {
  const emitter = new EventEmitter()
  let seen = 0
  emitter.on("Command", () => seen++)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) emitter.emit("Command", event(i))
  if (seen !== n) throw new Error(`EventEmitter delivered ${seen} of ${n}`)
  return perSecond(n, t0)
}

const S = {
  loop: "EventLoop (post → inline handler)",
  queue: "Effect Queue.offer / take (bounded)",
  unbounded: "Effect Queue.offer / take (unbounded)",
  merge: "Stream.merge of two queues",
  mergeOne: "Stream.merge of two queues, one event per pull",
  emitter: "EventEmitter.emit (sync, the limit)"
}

export default {
  name: "dispatch",
  title: "Event dispatch to one handler",
  method: "N events (`Event.Command`s built beforehand and cycled) produced by one fiber (two for the " +
    "merge) and counted by one handler; timed until the handler saw the last. The loop runs on the " +
    "linux-native platform with a 4,096-event queue (backpressure); the Effect queues are `Queue.bounded(4096)` " +
    "(like the loop's; it runs N/10 events, its rate does not grow with N) and `Queue.unbounded()`. " +
    "`Stream.merge` of two `Stream.fromQueue`s is shown as Effect 4 chunks it (everything queued, up to 4,096 events, per pull) " +
    "and with one event per pull (`Stream.fromEffectRepeat(Queue.take(q))`), as the platform's sources deliver them (N/10 events). " +
    "`EventEmitter` calls its listener synchronously inside `emit`: the cost floor of a dispatch, with no queue.",
  run: async ({ quick, rounds, progress }) => {
    const n = quick ? 200_000 : 1_000_000
    const subjects = [
      { name: S.loop, run: () => eventLoop(n) },
      // A bounded Queue hands over one event per fiber switch once full:
      // 20,000–60,000 events/s whatever N, so it runs a tenth of N.
      { name: S.queue, run: () => effectQueue(true)(n / 10) },
      { name: S.unbounded, run: () => effectQueue(false)(n) },
      { name: S.merge, run: () => streamMerge(false)(n) },
      // Pulling one event at a time is much slower: it runs a tenth of N.
      { name: S.mergeOne, run: () => streamMerge(true)(n / 10) },
      { name: S.emitter, run: () => eventEmitter(n) }
    ]
    const values = await interleave({ subjects, rounds, warmup: 1, progress, label: "dispatch" })
    const r = rows("dispatch", values)
    const metric = `events/s, ${n.toLocaleString("en-US")} events`
    const cmp = (a, b, target) => r.compare(a, b, "value", { label: "events/s ratio", target })
    return [
      ...Object.values(S).map((s) => r.measure(s, "value", "events/s", { metric })),
      cmp(S.loop, S.queue, { op: ">=", value: 2 }),
      cmp(S.loop, S.unbounded, { op: ">=", value: 2 }),
      cmp(S.loop, S.merge, { op: ">=", value: 4 }),
      cmp(S.loop, S.mergeOne, { op: ">=", value: 4 }),
      cmp(S.loop, S.emitter)
    ]
  }
}
