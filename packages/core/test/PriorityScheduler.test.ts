import { describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scheduler } from "effect"
import { expect } from "vitest"
import { InvalidOptions } from "../src/AgendaError.js"
import * as Priority from "../src/Priority.js"
import * as PriorityScheduler from "../src/PriorityScheduler.js"

/**
 * Schedules a plain task the way a fiber does: on the dispatcher of a level's
 * scheduler. The level comes from the sign of `priority` (`Priority.fromNumber`);
 * the number itself is passed on too, and ignored, as Effect's are.
 */
const schedule = (scheduler: PriorityScheduler.PriorityScheduler, task: () => void, priority: number): void =>
  scheduler.scheduler(Priority.fromNumber(priority)).makeDispatcher().scheduleTask(task, priority)

/** Runs `program` with a level of `scheduler` as its Scheduler (Normal by default). */
const runOn = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  scheduler: PriorityScheduler.PriorityScheduler,
  priority: Priority.Priority = "Normal"
) => Effect.provideService(program, Scheduler.Scheduler, scheduler.scheduler(priority))

/** Effect 3's `withSchedulingPriority(n)`: the level of n's sign. */
const atPriority = (priority: number) => PriorityScheduler.withPriority(Priority.fromNumber(priority))

const total = (ran: ReadonlyArray<number>) => ran[0] + ran[1] + ran[2]

/** One turn of Node's event loop; used to poll a condition, never to wait a fixed time. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

const until = async (condition: () => boolean): Promise<void> => {
  while (!condition()) await nextTurn()
}

/** The snapshot of the counters a host callback saw while it ran. */
interface Seen {
  readonly pending: number
  readonly ran: number
  readonly slicesCut: number
}

const seen = (scheduler: PriorityScheduler.PriorityScheduler): Seen => ({
  pending: scheduler.pending,
  ran: total(scheduler.ran),
  slicesCut: scheduler.slicesCut
})

describe("PriorityScheduler", () => {
  describe("scheduleTask with plain tasks", () => {
    it("runs the highest non-empty level first and keeps FIFO order within a level", async () => {
      // A clock that stands still: nine tasks fit one slice however loaded the machine is.
      const scheduler = PriorityScheduler.make({ now: () => 0 })
      const order: Array<string> = []
      const push = (name: string, priority: number) => schedule(scheduler, () => order.push(name), priority)
      // Interleaved on purpose, with several numbers per level: only the sign counts.
      push("L1", -1)
      push("N1", 0)
      push("H1", 1)
      push("L2", -7)
      push("H2", 42)
      push("N2", 0)
      push("H3", 0.5)
      push("L3", -0.5)
      push("N3", -0)
      expect(scheduler.pending).toBe(9)
      // Nothing runs synchronously: the drain is a microtask.
      expect(order).toEqual([])
      await until(() => scheduler.pending === 0)
      expect(order).toEqual(["H1", "H2", "H3", "N1", "N2", "N3", "L1", "L2", "L3"])
      expect(scheduler.ran).toEqual([3, 3, 3])
      expect(scheduler.slicesCut).toBe(0)
    })

    it("re-checks the levels after every task, so work a task schedules at a higher level runs next", async () => {
      const scheduler = PriorityScheduler.make()
      const order: Array<string> = []
      schedule(scheduler, () => {
        order.push("N1")
        schedule(scheduler, () => order.push("H from N1"), 1)
        schedule(scheduler, () => order.push("N from N1"), 0)
      }, 0)
      schedule(scheduler, () => order.push("N2"), 0)
      schedule(scheduler, () => {
        order.push("L1")
        schedule(scheduler, () => order.push("L from L1"), -1)
      }, -1)
      schedule(scheduler, () => order.push("L2"), -1)
      await until(() => scheduler.pending === 0)
      expect(order).toEqual(["N1", "H from N1", "N2", "N from N1", "L1", "L2", "L from L1"])
      expect(scheduler.ran).toEqual([1, 3, 3])
    })

    it("starts a new drain for tasks scheduled after the queue emptied", async () => {
      const scheduler = PriorityScheduler.make()
      let count = 0
      schedule(scheduler, () => count++, 0)
      await until(() => scheduler.pending === 0 && count === 1)
      schedule(scheduler, () => count++, -1)
      schedule(scheduler, () => count++, 1)
      await until(() => count === 3)
      expect(scheduler.ran).toEqual([1, 1, 1])
      expect(scheduler.pending).toBe(0)
    })

    it("ends a slice once sliceMillis have passed on its clock", async () => {
      let clock = 0
      const scheduler = PriorityScheduler.make({ sliceMillis: 2, now: () => clock })
      // Each task takes 1 ms of the injected clock: a slice runs 3 tasks
      // (the third sees 3 > 0 + 2), far fewer than the 256 of sliceSize.
      for (let i = 0; i < 7; i++) schedule(scheduler, () => clock++, 0)
      const atHost = await new Promise<Seen>((resolve) => setImmediate(() => resolve(seen(scheduler))))
      expect(atHost).toEqual({ pending: 4, ran: 3, slicesCut: 1 })
      await until(() => scheduler.pending === 0)
      expect(scheduler.ran).toEqual([0, 7, 0])
      expect(scheduler.slicesCut).toBe(2)
    })

    it("rejects a sliceMillis that is not positive", () => {
      for (const sliceMillis of [0, -1, NaN]) {
        expect(() => PriorityScheduler.make({ sliceMillis })).toThrow(/invalid option sliceMillis/)
      }
    })

    it("runs at most sliceSize tasks before a setImmediate callback gets its turn", async () => {
      // Clock stands still: the count alone ends slices.
      const scheduler = PriorityScheduler.make({ sliceSize: 10, now: () => 0 })
      let count = 0
      for (let i = 0; i < 25; i++) schedule(scheduler, () => count++, i % 3 - 1)
      const host = new Promise<Seen>((resolve) => setImmediate(() => resolve(seen(scheduler))))
      const atHost = await host
      expect(atHost).toEqual({ pending: 15, ran: 10, slicesCut: 1 })
      await until(() => scheduler.pending === 0)
      expect(count).toBe(25)
      // Three slices of 10, 10 and 5: two ended with work left.
      expect(scheduler.slicesCut).toBe(2)
    })

    it("uses slices of 256 tasks by default", async () => {
      // A clock that stands still: only the count ends a slice, however
      // loaded the machine is.
      const scheduler = PriorityScheduler.make({ now: () => 0 })
      for (let i = 0; i < 600; i++) schedule(scheduler, () => {}, 0)
      const atHost = await new Promise<Seen>((resolve) => setImmediate(() => resolve(seen(scheduler))))
      expect(atHost).toEqual({ pending: 600 - 256, ran: 256, slicesCut: 1 })
      await until(() => scheduler.pending === 0)
      expect(scheduler.ran).toEqual([0, 600, 0])
      expect(scheduler.slicesCut).toBe(2)
    })

    it("lets a setTimeout callback run while thousands of High tasks keep rescheduling themselves", async () => {
      const scheduler = PriorityScheduler.make({ sliceSize: 64 })
      const tasks = 2000
      // Only a guard for a broken scheduler: with unbounded slices the timer
      // would wait for all of this work (then see nothing pending) instead of
      // the test hanging in one endless microtask.
      const maxRounds = 500
      let stop = false
      let stopped = 0
      const spin = (round: number) => (): void => {
        if (stop || round === maxRounds) stopped++
        else schedule(scheduler, spin(round + 1), 1)
      }
      for (let i = 0; i < tasks; i++) schedule(scheduler, spin(0), 1)
      const atTimer = await new Promise<Seen>((resolve) =>
        setTimeout(() => {
          stop = true
          resolve(seen(scheduler))
        }, 0)
      )
      // Between slices every spinning task sits in the queue exactly once.
      expect(atTimer.pending).toBe(tasks)
      expect(atTimer.slicesCut).toBeGreaterThan(0)
      expect(atTimer.ran).toBeGreaterThanOrEqual(64)
      await until(() => stopped === tasks)
      expect(scheduler.pending).toBe(0)
      expect(scheduler.ran[1] + scheduler.ran[2]).toBe(0)
    })
  })

  describe("fibers", () => {
    it.effect("resumes runnable High fibers before Normal before Low, FIFO within a level", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make()
        const events: Array<string> = []
        const levels = [["L", -1], ["N", 0], ["H", 1]] as const
        const program = Effect.gen(function*() {
          const fibers: Array<Fiber.Fiber<unknown>> = []
          // Forked in an order that mixes the levels, so neither fork order
          // nor level alone explains the expected sequence.
          for (let i = 0; i < 5; i++) {
            for (const [name, priority] of levels) {
              const id = `${name}${i}`
              const body = Effect.sync(() => events.push(`start ${id}`)).pipe(
                Effect.andThen(Effect.yieldNow),
                Effect.andThen(Effect.sync(() => events.push(`step ${id}`)))
              )
              fibers.push(yield* Effect.forkChild(body).pipe(atPriority(priority)))
            }
          }
          yield* Fiber.joinAll(fibers)
        })
        yield* runOn(program, scheduler)
        const ids = (name: string) => [0, 1, 2, 3, 4].map((i) => `${name}${i}`)
        // A yielded High continuation still beats the Normal fibers that have not even started.
        const expected = ["H", "N", "L"].flatMap((name) => [
          ...ids(name).map((id) => `start ${id}`),
          ...ids(name).map((id) => `step ${id}`)
        ])
        expect(events).toEqual(expected)
        expect(scheduler.ran[0]).toBeGreaterThanOrEqual(10)
        expect(scheduler.ran[2]).toBeGreaterThanOrEqual(10)
      }))

    it.effect("resumes fibers woken together by a Deferred in priority order, not wake-up order, from their first yield", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make()
        const order: Array<string> = []
        const program = Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          // Registered on the gate Low first, so resuming in wake-up order would run Low first.
          const waiters = [["Low", -1], ["Normal", 0], ["High", 1], ["Low2", -1], ["High2", 1]] as const
          const fibers: Array<Fiber.Fiber<unknown>> = []
          for (const [name, priority] of waiters) {
            const registered = yield* Deferred.make<void>()
            // Signalling and suspending on the gate happen in one run of the
            // fiber, so once this parent resumes the waiter is registered.
            // Effect 4 resumes a woken fiber inside the waker, so the
            // scheduler orders the waiters from their first yield on.
            const body = Effect.sync(() => Deferred.doneUnsafe(registered, Exit.void)).pipe(
              Effect.andThen(Deferred.await(gate)),
              Effect.andThen(Effect.yieldNow),
              Effect.andThen(Effect.sync(() => order.push(name)))
            )
            fibers.push(yield* Effect.forkChild(body).pipe(atPriority(priority)))
            yield* Deferred.await(registered)
          }
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.joinAll(fibers)
        })
        yield* runOn(program, scheduler)
        expect(order).toEqual(["High", "High2", "Normal", "Low", "Low2"])
      }))

    it.effect("a High fiber finishes before most of 1,000 busy Low fibers", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make()
        const lows = 1000
        const steps = 10
        let lowStarted = 0
        let lowDone = 0
        let lowDoneWhenHighFinished = -1
        const program = Effect.gen(function*() {
          const allStarted = yield* Deferred.make<void>()
          const busyLow = Effect.gen(function*() {
            if (++lowStarted === lows) yield* Deferred.succeed(allStarted, undefined)
            for (let i = 0; i < steps; i++) yield* Effect.yieldNow
            lowDone++
          })
          const lowFibers = yield* Effect.forEach(
            Array.from({ length: lows }),
            () => Effect.forkChild(busyLow).pipe(atPriority(-1))
          )
          // Every Low fiber is now in its loop, competing for the scheduler.
          yield* Deferred.await(allStarted)
          const high = Effect.gen(function*() {
            for (let i = 0; i < steps; i++) yield* Effect.yieldNow
            lowDoneWhenHighFinished = lowDone
          })
          yield* Fiber.join(yield* Effect.forkChild(high).pipe(atPriority(1)))
          yield* Fiber.joinAll(lowFibers)
        })
        yield* runOn(program, scheduler)
        // FIFO scheduling would let every Low fiber finish first (the High
        // fiber starts a round behind them and needs as many yields).
        expect(lowDoneWhenHighFinished).toBeGreaterThanOrEqual(0)
        expect(lowDoneWhenHighFinished).toBeLessThan(lows / 10)
        expect(lowDone).toBe(lows)
        expect(scheduler.ran[0]).toBeGreaterThanOrEqual(steps)
        expect(scheduler.ran[2]).toBeGreaterThanOrEqual(lows * steps)
      }))

    it.effect("a setImmediate callback runs while thousands of fiber steps are pending", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make({ sliceSize: 128 })
        const fibers = 2000
        const steps = 5
        let done = 0
        const program = Effect.gen(function*() {
          const busy = Effect.gen(function*() {
            for (let i = 0; i < steps; i++) yield* Effect.yieldNow
            done++
          })
          // Forked Low so this Normal fiber finishes forking before any of them runs.
          const running = yield* Effect.forEach(
            Array.from({ length: fibers }),
            () => Effect.forkChild(busy).pipe(atPriority(-1))
          )
          const atHost = yield* Effect.callback<Seen & { readonly done: number }>((resume) => {
            setImmediate(() => resume(Effect.succeed({ ...seen(scheduler), done })))
          })
          yield* Fiber.joinAll(running)
          return atHost
        })
        const atHost = yield* runOn(program, scheduler)
        expect(atHost.done).toBeLessThan(fibers)
        expect(atHost.pending).toBeGreaterThan(0)
        expect(atHost.slicesCut).toBeGreaterThan(0)
        expect(atHost.ran).toBeLessThan(fibers * (steps + 1))
        expect(done).toBe(fibers)
        expect(scheduler.ran[2]).toBeGreaterThanOrEqual(fibers * (steps + 1))
        expect(scheduler.slicesCut).toBeGreaterThan(atHost.slicesCut)
      }))

    it.effect("a long-running Low fiber is preempted at its op budget and queued behind other Low work", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make()
        const iterations = 20_000
        let i = 0
        let seenByNormal = -1
        let seenByOtherLow = -1
        const program = Effect.gen(function*() {
          const wake = yield* Deferred.make<void>()
          // The woken fibers yield once: Effect 4 resumes them inside the
          // waker, and from there on the scheduler orders them.
          const normal = yield* Effect.forkChild(
            Deferred.await(wake).pipe(Effect.andThen(Effect.yieldNow), Effect.andThen(Effect.sync(() => (seenByNormal = i))))
          )
          const otherLow = yield* Effect.forkChild(
            Deferred.await(wake).pipe(Effect.andThen(Effect.yieldNow), Effect.andThen(Effect.sync(() => (seenByOtherLow = i))))
          ).pipe(atPriority(-1))
          // Wakes both waiters, then never suspends on its own: only the
          // scheduler's op budget makes it give way.
          const long = Effect.andThen(
            Deferred.succeed(wake, undefined),
            Effect.forEach(Array.from({ length: iterations }), () => Effect.sync(() => i++), { discard: true })
          )
          const longFiber = yield* Effect.forkChild(long).pipe(atPriority(-1))
          yield* Fiber.joinAll<Array<Fiber.Fiber<unknown, never>>>([normal, otherLow, longFiber])
        })
        yield* runOn(program, scheduler)
        expect(i).toBe(iterations)
        // Without yielding on the budget both would see the loop finished;
        // yielding at Normal instead of the fiber's Low would starve the other Low fiber.
        expect(seenByNormal).toBeGreaterThan(0)
        expect(seenByNormal).toBeLessThan(iterations)
        expect(seenByOtherLow).toBeGreaterThan(0)
        expect(seenByOtherLow).toBeLessThan(iterations)
      }))

    it("shouldYield is true once a fiber's op count reaches its budget, at every level", () => {
      const scheduler = PriorityScheduler.make()
      const fiber = (currentOpCount: number, maxOpsBeforeYield: number) =>
        ({ currentOpCount, cache: { maxOpsBeforeYield } }) as unknown as Fiber.Fiber<unknown, unknown>
      const high = scheduler.scheduler("High")
      const low = scheduler.scheduler("Low")
      const normal = scheduler.scheduler("Normal")
      expect(high.shouldYield(fiber(2047, 2048))).toBe(false)
      expect(high.shouldYield(fiber(2048, 2048))).toBe(true)
      expect(low.shouldYield(fiber(2049, 2048))).toBe(true)
      // Normal yields like the others (Effect 3 needed 0 here, not false).
      expect(normal.shouldYield(fiber(11, 10))).toBe(true)
      expect(normal.shouldYield(fiber(0, 10))).toBe(false)
    })

    it("a level's dispatcher is shared by every fiber and ignores the numeric priority", async () => {
      const scheduler = PriorityScheduler.make()
      const low = scheduler.scheduler("Low")
      expect(low.makeDispatcher()).toBe(low.makeDispatcher())
      expect(low.executionMode).toBe("async")
      const order: Array<string> = []
      low.makeDispatcher().scheduleTask(() => order.push("low, asked for 100"), 100)
      scheduler.scheduler("Normal").makeDispatcher().scheduleTask(() => order.push("normal, asked for -100"), -100)
      await until(() => scheduler.pending === 0)
      expect(order).toEqual(["normal, asked for -100", "low, asked for 100"])
    })
  })

  describe("make", () => {
    it("rejects a sliceSize that is not a positive integer", () => {
      for (const sliceSize of [0, -1, 1.5, NaN, Infinity, -Infinity]) {
        expect(() => PriorityScheduler.make({ sliceSize }), `sliceSize ${sliceSize}`).toThrow(InvalidOptions)
      }
      expect(() => PriorityScheduler.make({ sliceSize: 0 })).toThrow(
        /invalid option sliceSize: got 0, expected a positive integer/
      )
      expect(() => PriorityScheduler.make({ sliceSize: "8" as unknown as number })).toThrow(InvalidOptions)
    })

    it("accepts a sliceSize of 1 and then cuts after every task", async () => {
      const scheduler = PriorityScheduler.make({ sliceSize: 1 })
      for (let i = 0; i < 4; i++) schedule(scheduler, () => {}, 0)
      await until(() => scheduler.pending === 0)
      expect(scheduler.ran).toEqual([0, 4, 0])
      expect(scheduler.slicesCut).toBe(3)
    })

    it("gives each call its own queues and counters", async () => {
      const a = PriorityScheduler.make()
      const b = PriorityScheduler.make()
      expect(a).not.toBe(b)
      schedule(a, () => {}, 1)
      await until(() => a.pending === 0)
      expect(a.ran).toEqual([1, 0, 0])
      expect(b.ran).toEqual([0, 0, 0])
    })
  })

  describe("layer", () => {
    it.effect("installs a new scheduler for the program and provides it as CurrentPriorityScheduler", () =>
      Effect.gen(function*() {
        const outside = yield* Scheduler.Scheduler
        const inside = yield* Effect.gen(function*() {
          const provided = yield* PriorityScheduler.CurrentPriorityScheduler
          const installed = yield* Scheduler.Scheduler
          const before = [...provided.ran]
          yield* Effect.yieldNow.pipe(PriorityScheduler.withPriority("High"))
          yield* Effect.yieldNow.pipe(PriorityScheduler.withPriority("Low"))
          // Forked fibers inherit the scheduler.
          const child = yield* Effect.forkChild(
            Effect.andThen(Effect.yieldNow, Effect.service(Scheduler.Scheduler))
          )
          const childScheduler = yield* Fiber.join(child)
          return { provided, installed, before, after: [...provided.ran], childScheduler }
        }).pipe(Effect.provide(PriorityScheduler.layer()))
        expect(inside.installed).toBe(inside.provided.scheduler("Normal"))
        expect(inside.childScheduler).toBe(inside.provided.scheduler("Normal"))
        expect(inside.after[0]).toBeGreaterThan(inside.before[0])
        expect(inside.after[1]).toBeGreaterThan(inside.before[1])
        expect(inside.after[2]).toBeGreaterThan(inside.before[2])
        expect(outside).not.toBe(inside.installed)
        expect(yield* Effect.service(PriorityScheduler.PriorityScheduler).pipe(
          Effect.provide(PriorityScheduler.layer()),
          Effect.map((s) => s === inside.provided)
        )).toBe(false)
      }))

    it.effect("withPriority moves an effect to a level of the scheduler in context, and is a no-op without one", () =>
      Effect.gen(function*() {
        const plain = yield* Scheduler.Scheduler
        // No priority scheduler in context: the effect runs unchanged.
        expect(yield* Effect.service(Scheduler.Scheduler).pipe(PriorityScheduler.withPriority("High"))).toBe(plain)
        const scheduler = PriorityScheduler.make()
        const seen = yield* Effect.gen(function*() {
          const high = yield* PriorityScheduler.withPriority(Effect.service(Scheduler.Scheduler), "High")
          const low = yield* Effect.service(Scheduler.Scheduler).pipe(PriorityScheduler.withPriority("Low"))
          const after = yield* Effect.service(Scheduler.Scheduler)
          return { high, low, after }
        }).pipe((program) => runOn(program, scheduler))
        expect(seen.high).toBe(scheduler.scheduler("High"))
        expect(seen.low).toBe(scheduler.scheduler("Low"))
        expect(seen.after).toBe(scheduler.scheduler("Normal"))
        // Found through the service too, when the current scheduler is not one of its levels.
        const viaService = yield* Effect.service(Scheduler.Scheduler).pipe(
          PriorityScheduler.withPriority("Low"),
          Effect.provideService(PriorityScheduler.PriorityScheduler, scheduler)
        )
        expect(viaService).toBe(scheduler.scheduler("Low"))
      }))

    it.effect("builds a fresh scheduler per use and passes the options on", () =>
      Effect.gen(function*() {
        const program = Effect.gen(function*() {
          const scheduler = yield* PriorityScheduler.CurrentPriorityScheduler
          // More runnable fibers than one slice holds.
          const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.forkChild(Effect.yieldNow))
          yield* Fiber.joinAll(fibers)
          return scheduler
        })
        const first = yield* Effect.provide(program, PriorityScheduler.layer({ sliceSize: 4 }))
        const second = yield* Effect.provide(program, PriorityScheduler.layer({ sliceSize: 4 }))
        expect(first).not.toBe(second)
        expect(first.slicesCut).toBeGreaterThan(0)
        expect(second.slicesCut).toBeGreaterThan(0)
      }))

    it.effect("fails with a typed InvalidOptions when the options are invalid", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.provide(Effect.void, PriorityScheduler.layer({ sliceSize: 0 })))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect(error.option).toBe("sliceSize")
      }))
  })
})
