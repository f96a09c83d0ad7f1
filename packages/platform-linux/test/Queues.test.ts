import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Queue, Stream } from "effect"
import * as Queues from "../src/internal/queues.js"

// The platforms' streams rely on these; they fail if an Effect upgrade
// changes how a queue-backed stream pulls or ends.
describe("platform stream sources", () => {
  it.effect("one element per pull: what a consumer did not take stays for the next one", () =>
    Effect.gen(function*() {
      const source = yield* Queues.make<number>()
      for (const n of [1, 2, 3]) expect(Queues.offer(source, n)).toBe(true)
      expect(yield* Stream.runCollect(Stream.take(Queues.stream(source), 1))).toEqual([1])
      expect(yield* Stream.runCollect(Stream.take(Queues.stream(source), 2))).toEqual([2, 3])
    }))

  it.effect("closing ends a waiting consumer's stream instead of interrupting it", () =>
    Effect.gen(function*() {
      const source = yield* Queues.make<number>()
      const consumer = yield* Effect.forkChild(Stream.runCollect(Queues.stream(source)))
      Queues.offer(source, 1)
      // Bounded: the consumer takes the one element within these yields.
      for (let i = 0; i < 1000 && (yield* Queue.size(source)) > 0; i++) yield* Effect.yieldNow
      yield* Queues.close(source)
      const exit = yield* Fiber.await(consumer)
      expect(exit).toEqual(Exit.succeed([1]))
    }))

  it.effect("closing drops what is still queued; later pulls see the end and offers are refused", () =>
    Effect.gen(function*() {
      const source = yield* Queues.make<number>()
      Queues.offer(source, 1)
      Queues.offer(source, 2)
      Queues.closeUnsafe(source)
      expect(yield* Stream.runCollect(Queues.stream(source))).toEqual([])
      expect(Queues.offer(source, 3)).toBe(false)
      const end = yield* Effect.flip(Effect.flatten(Stream.toPull(Queues.stream(source))))
      expect(Cause.isDone(end)).toBe(true)
    }))
})
