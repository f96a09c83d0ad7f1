import { describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Exit, Layer, Logger, References, Ref, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { expect } from "vitest"
import { InvalidOptions } from "../src/AgendaError.js"
import type { TimerFired } from "../src/Event.js"
import { DeadlineHeap } from "../src/internal/timeouts.js"
import type { HeapItem } from "../src/internal/timeouts.js"
import { Platform } from "../src/Platform.js"
import * as Timeouts from "../src/Timeouts.js"
import { makeTimeoutsPlatform, ManualClock } from "./timeoutsPlatform.js"
import { TestPlatform, TestTime } from "@refpersys/testkit"
import type { TimerProbe } from "./timeoutsPlatform.js"

/** Polls (yielding, never sleeping) until `check` holds. */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, what: string, maxYields = 100_000) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxYields; i++) {
      if (yield* check) return
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`condition never held: ${what}`))
  })

const holds = (f: () => boolean) => Effect.sync(f)

const setup = (options?: Timeouts.Options) =>
  Effect.gen(function*() {
    const { platform, probe } = yield* makeTimeoutsPlatform
    const timeouts = yield* Timeouts.make(options).pipe(Effect.provideService(Platform, platform))
    return { timeouts, probe }
  })

/**
 * Waits until the timer's sleeper for the armed deadline is registered with
 * `TestClock` (so the adjust cannot slip past it), then adjusts.
 */
const advance = (probe: TimerProbe, millis: number) =>
  Effect.gen(function*() {
    yield* eventually(
      Effect.gen(function*() {
        const armed = probe.armed
        if (armed === undefined || armed <= (yield* Clock.currentTimeMillis)) return true
        return (yield* TestTime.pendingSleeps).includes(armed)
      }),
      "the timer's sleeper to be registered"
    )
    yield* TestClock.adjust(millis)
  })

/** An `onFire` that records each event, then runs the effect inline. */
const recording = () => {
  const events: Array<TimerFired> = []
  const onFire: NonNullable<Timeouts.Options["onFire"]> = (event, effect) =>
    Effect.andThen(Effect.sync(() => void events.push(event)), Effect.orDie(effect))
  return { events, onFire }
}

describe("Timeouts", () => {
  describe("ordering", () => {
    it.effect("fires 10,000 timeouts in deadline order, ties in insertion order", () =>
      Effect.gen(function*() {
        const { probe, timeouts } = yield* setup()
        const start = yield* Clock.currentTimeMillis
        // 50 distinct deadlines for 10,000 timeouts: about 200 ties each.
        const offsets = fc.sample(fc.integer({ min: 1, max: 50 }), { seed: 20_240_611, numRuns: 10_000 })
        const fired: Array<number> = []
        const handles: Array<Timeouts.TimeoutHandle> = []
        for (let i = 0; i < offsets.length; i++) {
          const effect = Effect.sync(() => void fired.push(i))
          handles.push(
            i % 2 === 0
              ? yield* timeouts.after(offsets[i], effect)
              : yield* timeouts.at(start + offsets[i], effect)
          )
        }
        // Armed once per new earliest deadline, never for a later one.
        const minima: Array<number> = []
        for (const offset of offsets) {
          if (minima.length === 0 || start + offset < minima[minima.length - 1]) minima.push(start + offset)
        }
        expect(probe.arms).toEqual(minima)
        expect(probe.armed).toBe(start + 1)

        const cancelled = new Set<number>()
        for (let i = 3; i < handles.length; i += 7) {
          expect(yield* handles[i].cancel).toBe(true)
          cancelled.add(i)
        }
        expect(yield* handles[3].cancel).toBe(false)

        const expected = offsets
          .map((offset, i) => ({ offset, i }))
          .filter(({ i }) => !cancelled.has(i))
          .sort((a, b) => a.offset - b.offset || a.i - b.i)
          .map(({ i }) => i)
        // Ids count from 1 in insertion order, so `pending` (by deadline,
        // then id) lists exactly the live timeouts in their firing order.
        const pending = yield* timeouts.pending
        expect(pending.map((info) => info.id)).toEqual(expected.map((i) => i + 1))
        expect(pending.map((info) => info.deadline)).toEqual(expected.map((i) => start + offsets[i]))

        yield* advance(probe, 50)
        yield* eventually(holds(() => fired.length >= expected.length), "all timeouts fired")
        expect(fired).toEqual(expected)
        expect(yield* handles[0].cancel).toBe(false)
        expect(yield* timeouts.stats).toEqual({
          scheduled: 10_000,
          fired: expected.length,
          cancelled: cancelled.size,
          missedTicks: 0,
          failures: 0,
          pending: 0
        })
        expect(yield* timeouts.pending).toEqual([])
      }))

    it.effect("past deadlines and zero delays fire without the clock moving", () =>
      Effect.gen(function*() {
        const { events, onFire } = recording()
        const { timeouts } = yield* setup({ onFire })
        yield* TestClock.setTime(1_000)
        yield* timeouts.after(0, Effect.void, { label: "zero" })
        yield* eventually(holds(() => events.length === 1), "the zero delay fired")
        yield* timeouts.at(400, Effect.void, { label: "long ago" })
        yield* eventually(holds(() => events.length === 2), "the past deadline fired")
        expect(events.map((e) => [e.label, e.deadline, e.at])).toEqual([["zero", 1_000, 1_000], ["long ago", 400, 1_000]])
        expect(yield* Clock.currentTimeMillis).toBe(1_000)
      }))

    it.effect("timeouts scheduled during a firing for past deadlines fire with the next firing, in deadline order", () =>
      Effect.gen(function*() {
        const { events, onFire } = recording()
        const { probe, timeouts } = yield* setup({ onFire })
        yield* TestClock.setTime(1_000)
        const schedule = Effect.orDie(Effect.all([
          timeouts.at(999, Effect.void, { label: "just now" }),
          timeouts.after(0, Effect.void, { label: "zero" }),
          timeouts.at(400, Effect.void, { label: "long ago" })
        ]))
        yield* timeouts.after(10, schedule, { label: "scheduler" })
        yield* timeouts.after(10, Effect.void, { label: "same batch" })
        yield* advance(probe, 10)
        yield* eventually(holds(() => events.length === 5), "all fired")
        expect(events.map((e) => [e.label, e.deadline, e.at])).toEqual([
          ["scheduler", 1_010, 1_010],
          ["same batch", 1_010, 1_010],
          // Scheduled during the first firing: they come with the next one.
          ["long ago", 400, 1_010],
          ["just now", 999, 1_010],
          ["zero", 1_010, 1_010]
        ])
      }))

    it.effect("a timeout that keeps rescheduling itself in the past does not hold up later ones", () =>
      Effect.gen(function*() {
        // With TestClock the loop below would run on microtasks only and
        // starve TestClock.adjust, which waits on setTimeout; this clock
        // moves synchronously.
        const clock = new ManualClock(0)
        yield* Effect.gen(function*() {
          const { timeouts } = yield* setup()
          // A safety net: if one firing drained entries added during it, the
          // loop would only end here and `later` would fire after it.
          const cap = 20_000
          let rounds = 0
          let stop = false
          const again: Effect.Effect<void> = Effect.suspend(() => {
            rounds++
            return stop || rounds >= cap
              ? Effect.void
              : Effect.asVoid(Effect.orDie(timeouts.at(0, again, { label: "again" })))
          })
          yield* timeouts.after(0, again)
          let laterAt: number | undefined
          yield* timeouts.after(10, Effect.sync(() => void (laterAt = rounds)))
          yield* eventually(holds(() => rounds >= 100), "the loop is spinning")
          clock.setTime(10)
          yield* eventually(holds(() => laterAt !== undefined), "the later timeout fired")
          expect(laterAt).toBeLessThan(cap)
          stop = true
          yield* eventually(Effect.map(timeouts.pending, (p) => p.length === 0), "the loop stopped")
          // Every round fired once, and so did the later timeout.
          expect(yield* timeouts.stats).toMatchObject({ fired: rounds + 1, pending: 0 })
        }).pipe(Effect.provideService(Clock.Clock, clock))
      }))
  })

  describe("cancel and the platform timer", () => {
    it.effect("arms the timer to the earliest deadline, re-arms on cancel of the earliest, disarms when empty", () =>
      Effect.gen(function*() {
        const { probe, timeouts } = yield* setup()
        const a = yield* timeouts.at(30, Effect.void)
        expect(probe.arms).toEqual([30])
        const b = yield* timeouts.at(50, Effect.void)
        expect(probe.arms).toEqual([30])
        const c = yield* timeouts.at(10, Effect.void)
        expect(probe.arms).toEqual([30, 10])
        const d = yield* timeouts.at(10, Effect.void)
        expect(probe.arms).toEqual([30, 10])

        expect(yield* a.cancel).toBe(true)
        expect(probe.arms).toEqual([30, 10])
        // `d` has the same deadline, so the timer is already right.
        expect(yield* c.cancel).toBe(true)
        expect(probe.arms).toEqual([30, 10])
        expect(yield* d.cancel).toBe(true)
        expect(probe.arms).toEqual([30, 10, 50])
        expect(yield* d.cancel).toBe(false)
        expect(probe.disarms).toBe(0)
        expect(yield* b.cancel).toBe(true)
        expect(probe.disarms).toBe(1)
        expect(probe.armed).toBeUndefined()
        expect(yield* timeouts.pending).toEqual([])

        const fired: Array<string> = []
        const e = yield* timeouts.after(20, Effect.sync(() => void fired.push("e")))
        const f = yield* timeouts.after(45, Effect.sync(() => void fired.push("f")))
        expect(probe.arms).toEqual([30, 10, 50, 20])
        yield* advance(probe, 20)
        yield* eventually(holds(() => probe.armed === 45), "re-armed to the next deadline")
        expect(fired).toEqual(["e"])
        expect(yield* e.cancel).toBe(false)
        expect(yield* f.cancel).toBe(true)
        yield* TestClock.adjust(100)
        expect(fired).toEqual(["e"])
        expect(yield* timeouts.stats).toEqual({
          scheduled: 6,
          fired: 1,
          cancelled: 5,
          missedTicks: 0,
          failures: 0,
          pending: 0
        })
      }))

    it.effect("a timeout cancelled by an earlier one of the same batch never fires", () =>
      Effect.gen(function*() {
        const fired: Array<string> = []
        const { probe, timeouts } = yield* setup()
        const victim = yield* Deferred.make<Timeouts.TimeoutHandle>()
        const results = yield* Ref.make<Array<boolean>>([])
        yield* timeouts.after(10, Effect.gen(function*() {
          fired.push("killer")
          const handle = yield* Deferred.await(victim)
          const cancelled = yield* handle.cancel
          yield* Ref.update(results, (r) => [...r, cancelled])
        }))
        yield* Deferred.succeed(victim, yield* timeouts.after(10, Effect.sync(() => void fired.push("victim"))))
        yield* timeouts.after(10, Effect.sync(() => void fired.push("bystander")))
        yield* advance(probe, 10)
        yield* eventually(holds(() => fired.length === 2), "the batch ran")
        yield* TestClock.adjust(10)
        expect(fired).toEqual(["killer", "bystander"])
        expect(yield* Ref.get(results)).toEqual([true])
        expect((yield* timeouts.stats).fired).toBe(2)
      }))

    it.effect("a periodic timeout cancelled from its own effect stops", () =>
      Effect.gen(function*() {
        const { probe, timeouts } = yield* setup()
        const self = yield* Deferred.make<Timeouts.TimeoutHandle>()
        let runs = 0
        const handle = yield* timeouts.every("10 millis", Effect.gen(function*() {
          runs++
          if (runs === 3) expect(yield* (yield* Deferred.await(self)).cancel).toBe(true)
        }))
        yield* Deferred.succeed(self, handle)
        for (let i = 0; i < 3; i++) {
          yield* advance(probe, 10)
          yield* eventually(holds(() => runs === i + 1), `tick ${i + 1}`)
        }
        yield* eventually(holds(() => handle.fired === 3), "third tick counted")
        expect(yield* timeouts.pending).toEqual([])
        expect(probe.armed).toBeUndefined()
        yield* TestClock.adjust(100)
        expect(runs).toBe(3)
        expect(yield* handle.cancel).toBe(false)
        expect(yield* timeouts.stats).toMatchObject({ fired: 3, cancelled: 1, pending: 0 })
      }))
  })

  describe("periodic timeouts", () => {
    it.effect("every does not drift over 10,000 ticks, even when each other tick runs late", () =>
      Effect.gen(function*() {
        const start = 5_000
        const interval = 10
        // TestClock gives each wake-up three setTimeout(0) turns, about 45 s
        // for 10,000 ticks here; this clock resumes the sleeper directly.
        const clock = new ManualClock(start)
        yield* Effect.gen(function*() {
          const { events, onFire } = recording()
          const { timeouts } = yield* setup({ onFire })
          const handle = yield* timeouts.every(interval, Effect.void, { label: "tick" })
          // The driver has fired `ticks` times and parked on the next deadline.
          const settled = (ticks: number) =>
            eventually(holds(() => clock.sleeping === 1 && events.length === ticks), `parked after tick ${ticks}`)
          for (let k = 1; k <= 10_000; k++) {
            yield* settled(k - 1)
            // Odd steps land half an interval after the deadline, even steps
            // on it: every step passes exactly one deadline.
            clock.setTime(start + k * interval + (k % 2 === 1 ? interval / 2 : 0))
          }
          yield* settled(10_000)
          expect(clock.now).toBe(start + 10_000 * interval)
          expect(handle.fired).toBe(10_000)
          expect(handle.missed).toBe(0)
          expect(handle.deadline).toBe(start + 10_001 * interval)
          const wrong = events.filter((e, i) => {
            const deadline = start + (i + 1) * interval
            return e.deadline !== deadline || e.missed !== 0 ||
              e.at !== deadline + ((i + 1) % 2 === 1 ? interval / 2 : 0)
          })
          expect(wrong).toEqual([])
          expect((yield* timeouts.stats).missedTicks).toBe(0)
        }).pipe(Effect.provideService(Clock.Clock, clock))
      }))

    it.effect("every does not drift on TestClock either (200 ticks, one adjust per tick)", () =>
      Effect.gen(function*() {
        const { events, onFire } = recording()
        const { timeouts, probe } = yield* setup({ onFire })
        const start = yield* Clock.currentTimeMillis
        const handle = yield* timeouts.every("7 millis", Effect.void, { label: "tick" })
        for (let k = 1; k <= 200; k++) {
          yield* advance(probe, 7)
          yield* eventually(holds(() => events.length === k), `tick ${k}`)
        }
        expect(handle.fired).toBe(200)
        expect(events.every((e, i) => e.deadline === start + (i + 1) * 7 && e.at === e.deadline && e.missed === 0))
          .toBe(true)
        expect(handle.deadline).toBe(start + 201 * 7)
      }))

    it.effect("a late loop fires once and counts the missed ticks instead of bursting", () =>
      Effect.gen(function*() {
        const { events, onFire } = recording()
        const { probe, timeouts } = yield* setup({ onFire })
        const gate = yield* Deferred.make<void>()
        let runs = 0
        const handle = yield* timeouts.every("10 millis", Effect.gen(function*() {
          runs++
          // The first run is slow: the clock moves while the driver waits here.
          if (runs === 1) yield* Deferred.await(gate)
        }), { label: "slow" })
        yield* advance(probe, 10)
        yield* eventually(holds(() => runs === 1), "first tick running")
        // Nothing is sleeping on the clock, so the jump wakes no one.
        expect(yield* TestTime.pendingSleeps).toHaveLength(0)
        yield* TestClock.adjust(35)
        yield* Deferred.succeed(gate, undefined)
        yield* eventually(holds(() => runs === 2 && probe.armed === 50), "late tick, then re-armed")
        expect(events.map((e) => [e.deadline, e.missed, e.at])).toEqual([[10, 0, 10], [20, 2, 45]])
        expect(handle.missed).toBe(2)
        expect(handle.deadline).toBe(50)
        expect((yield* timeouts.stats).missedTicks).toBe(2)
        // The driver is parked on the next deadline: there was no burst.
        yield* eventually(
          Effect.map(TestTime.pendingSleeps, (s) => s.includes(50)),
          "sleeping until the next tick"
        )
        expect(runs).toBe(2)

        yield* advance(probe, 5)
        yield* eventually(holds(() => runs === 3), "on-time tick")
        expect(events[2]).toMatchObject({ deadline: 50, missed: 0, at: 50, label: "slow", id: handle.id })
        expect(handle.fired).toBe(3)
        expect(yield* timeouts.stats).toMatchObject({ fired: 3, missedTicks: 2, pending: 1 })
      }))
  })

  describe("failures", () => {
    it.effect("failures and defects are logged with the label and counted; the driver goes on", () =>
      Effect.gen(function*() {
        const logs: Array<string> = []
        const logger = Logger.make(({ fiber, logLevel, message }) => {
          const annotations = Object.entries(fiber.getRef(References.CurrentLogAnnotations))
          logs.push(`${logLevel.toUpperCase()} ${String(message)} ${JSON.stringify(annotations)}`)
        })
        const { probe, timeouts } = yield* setup().pipe(Effect.provide(Logger.layer([logger])))
        const ran: Array<string> = []
        yield* timeouts.after(10, Effect.fail("boom"), { label: "fails" })
        yield* timeouts.after(10, Effect.die(new Error("bug")), { label: "dies" })
        yield* timeouts.after(10, Effect.sync(() => void ran.push("same batch")))
        yield* advance(probe, 10)
        yield* eventually(holds(() => ran.length === 1), "the healthy timeout ran")
        expect(logs.some((l) => l.startsWith("ERROR") && l.includes("(fails) failed") && l.includes("[\"timeout\",\"fails\"]")))
          .toBe(true)
        expect(logs.some((l) => l.includes("(dies) failed") && l.includes("[\"timeout\",\"dies\"]"))).toBe(true)
        expect((yield* timeouts.stats).failures).toBe(2)

        yield* timeouts.after(10, Effect.sync(() => void ran.push("next batch")))
        yield* advance(probe, 10)
        yield* eventually(holds(() => ran.length === 2), "the driver still fires")
        expect(ran).toEqual(["same batch", "next batch"])
      }))

    it.effect("an onFire that dies is counted and logged, and does not stop the driver", () =>
      Effect.gen(function*() {
        const logs: Array<string> = []
        const logger = Logger.make(({ message }) => void logs.push(String(message)))
        const seen: Array<string> = []
        const { probe, timeouts } = yield* setup({
          onFire: (event) =>
            event.label === "poison" ? Effect.die(new Error("dispatcher bug")) : Effect.sync(() => void seen.push(event.label))
        }).pipe(Effect.provide(Logger.layer([logger])))
        yield* timeouts.after(10, Effect.void, { label: "poison" })
        yield* timeouts.after(20, Effect.void, { label: "fine" })
        yield* advance(probe, 10)
        yield* eventually(holds(() => probe.armed === 20), "re-armed after the poisoned firing")
        yield* advance(probe, 10)
        yield* eventually(holds(() => seen.length === 1), "the next firing")
        expect(seen).toEqual(["fine"])
        expect(logs.some((l) => l.includes("(poison) could not be dispatched"))).toBe(true)
        expect((yield* timeouts.stats).failures).toBe(1)
      }))
  })

  describe("inspection", () => {
    it.effect("pending lists live timeouts by deadline then id; stats count; both are Schema-encodable", () =>
      Effect.gen(function*() {
        const { probe, timeouts } = yield* setup()
        yield* TestClock.setTime(100)
        const c = yield* timeouts.after("30 millis", Effect.void, { label: "c" })
        const a = yield* timeouts.at(110, Effect.void)
        const p = yield* timeouts.every("20 millis", Effect.void, { label: "periodic" })
        const a2 = yield* timeouts.after(10, Effect.void, { label: "a2" })
        const gone = yield* timeouts.after(5, Effect.void, { label: "gone" })
        expect([c.id, a.id, p.id, a2.id, gone.id]).toEqual([1, 2, 3, 4, 5])
        expect(a.label).toBe("timeout#2")
        expect(yield* gone.cancel).toBe(true)
        const info = (id: number, label: string, deadline: number, interval?: number, fired = 0) => ({
          id,
          label,
          deadline,
          interval,
          fired,
          missed: 0
        })
        expect(yield* timeouts.pending).toEqual([
          info(2, "timeout#2", 110),
          info(4, "a2", 110),
          info(3, "periodic", 120, 20),
          info(1, "c", 130)
        ])
        yield* advance(probe, 25)
        yield* eventually(holds(() => p.fired === 1), "the first tick")
        const pending = yield* timeouts.pending
        expect(pending).toEqual([info(1, "c", 130), info(3, "periodic", 140, 20, 1)])
        const stats = yield* timeouts.stats
        expect(stats).toEqual({ scheduled: 5, fired: 3, cancelled: 1, missedTicks: 0, failures: 0, pending: 2 })
        expect(a2).toMatchObject({ fired: 1, deadline: 110 })
        expect(JSON.parse(JSON.stringify(a2))).toEqual(info(4, "a2", 110, undefined, 1))

        const codec = Schema.Struct({ pending: Schema.Array(Timeouts.TimeoutInfo), stats: Timeouts.TimeoutStats })
        const json = JSON.parse(JSON.stringify(Schema.encodeSync(codec)({ pending, stats })))
        expect(Schema.decodeUnknownSync(codec)(json)).toEqual({ pending, stats })
      }))

    it.effect("fails with InvalidOptions for bad input and schedules nothing", () =>
      Effect.gen(function*() {
        const { probe, timeouts } = yield* setup()
        const failure = <A>(effect: Effect.Effect<A, InvalidOptions>) =>
          Effect.map(Effect.flip(effect), (e) => {
            expect(e).toBeInstanceOf(InvalidOptions)
            return [e.option, e.expected] as const
          })
        const duration = ["duration", "a finite non-negative Duration (e.g. \"5 seconds\" or 5000)"]
        const interval = ["interval", "a finite positive Duration (e.g. \"1 second\" or 1000)"]
        const deadline = ["deadline", "a finite number of Clock milliseconds"]
        expect(yield* failure(timeouts.after(-1, Effect.void))).toEqual(duration)
        expect(yield* failure(timeouts.after(Number.NaN, Effect.void))).toEqual(duration)
        expect(yield* failure(timeouts.after("-5 millis", Effect.void))).toEqual(duration)
        expect(yield* failure(timeouts.after(Number.POSITIVE_INFINITY, Effect.void))).toEqual(duration)
        expect(yield* failure(timeouts.at(Number.POSITIVE_INFINITY, Effect.void))).toEqual(deadline)
        expect(yield* failure(timeouts.at(Number.NaN, Effect.void))).toEqual(deadline)
        expect(yield* failure(timeouts.at(Number.NEGATIVE_INFINITY, Effect.void))).toEqual(deadline)
        expect(yield* failure(timeouts.every(Number.POSITIVE_INFINITY, Effect.void))).toEqual(interval)
        expect(yield* failure(timeouts.every(0, Effect.void))).toEqual(interval)
        expect(yield* failure(timeouts.every("0 millis", Effect.void))).toEqual(interval)
        expect(yield* failure(timeouts.every(-10, Effect.void))).toEqual(interval)
        expect(yield* failure(timeouts.every(Number.NaN, Effect.void))).toEqual(interval)
        const untyped = timeouts as unknown as {
          readonly after: (d: unknown, e: unknown, o?: unknown) => Effect.Effect<unknown, InvalidOptions>
        }
        expect(yield* failure(untyped.after("soon", Effect.void))).toEqual(duration)
        expect(yield* failure(untyped.after(10, Effect.void, { label: 42 }))).toEqual(["label", "a string"])
        expect(yield* failure(untyped.after(10, () => "not an effect"))).toEqual(["effect", "an Effect"])
        const message = (yield* Effect.flip(timeouts.after(-1, Effect.void))).message
        expect(message).toContain("invalid option duration: got -1")
        expect(yield* timeouts.stats).toMatchObject({ scheduled: 0, pending: 0 })
        expect(probe.arms).toEqual([])
        // A valid call still gets id 1: failed calls use up no ids.
        expect((yield* timeouts.after(0, Effect.void)).id).toBe(1)
      }))
  })

  describe("far and long-past deadlines", () => {
    const day = 86_400_000

    it.live("after('25 days') and every('30 days') fire when due on a live Clock; at(-1e300) fires at once", () =>
      Effect.gen(function*() {
        // A live Clock the test moves forward; the platform's timer sleeps in
        // 20 ms chunks, so it sees the move soon (the default chunk is 2^31-1 ms).
        const shifted = TestTime.shiftedClock()
        const { platform } = yield* TestPlatform.make({ timerChunkMillis: 20 })
        const timeouts = yield* Timeouts.make().pipe(
          Effect.provideService(Platform, platform),
          Effect.provideService(Clock.Clock, shifted.clock)
        )
        const bound = { duration: "10 seconds", orElse: () => Effect.fail(new Error("the timeout never fired")) } as const
        const past = yield* Deferred.make<void>()
        yield* timeouts.at(-1e300, Deferred.succeed(past, undefined))
        yield* timeouts.at(Date.UTC(1700, 0, 1), Effect.void)
        yield* Deferred.await(past).pipe(Effect.timeoutOrElse(bound))
        const once = yield* Deferred.make<number>()
        const ticks = yield* Ref.make(0)
        const tick = yield* Deferred.make<number>()
        const h1 = yield* timeouts.after("25 days", Effect.suspend(() => Deferred.succeed(once, shifted.clock.currentTimeMillisUnsafe())))
        const h2 = yield* timeouts.every(
          "30 days",
          Effect.andThen(Ref.update(ticks, (n) => n + 1), Effect.suspend(() => Deferred.succeed(tick, shifted.clock.currentTimeMillisUnsafe())))
        )
        expect((yield* timeouts.pending).map((p) => p.deadline)).toEqual([h1.deadline, h2.deadline])
        // Moved once the timer sleeps towards the 25-day deadline.
        const sleeps = shifted.sleeps()
        yield* TestTime.eventually(Effect.sync(() => shifted.sleeps() > sleeps), "the timer to sleep")
        shifted.shift(25 * day)
        expect(yield* Deferred.await(once).pipe(Effect.timeoutOrElse(bound))).toBeGreaterThanOrEqual(h1.deadline)
        expect(yield* Ref.get(ticks)).toBe(0)
        const firstTick = h2.deadline
        shifted.shift(5 * day)
        expect(yield* Deferred.await(tick).pipe(Effect.timeoutOrElse(bound))).toBeGreaterThanOrEqual(firstTick)
        expect(h2.fired).toBe(1)
        expect(yield* timeouts.stats).toMatchObject({ fired: 4, failures: 0 })
      }))

    it.effect("on TestClock, after('25 days') fires at its deadline and not a millisecond before", () =>
      Effect.gen(function*() {
        const { platform } = yield* TestPlatform.make()
        const timeouts = yield* Timeouts.make().pipe(Effect.provideService(Platform, platform))
        const fired = yield* Ref.make<number | undefined>(undefined)
        const handle = yield* timeouts.after(
          "25 days",
          Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.set(fired, now))
        )
        yield* TestTime.adjustWhenSleeping(25 * day - 1)
        expect(yield* Ref.get(fired)).toBeUndefined()
        yield* TestClock.adjust(1)
        yield* TestTime.eventually(Effect.map(Ref.get(fired), (at) => at !== undefined), "the 25-day timeout fired")
        expect(yield* Ref.get(fired)).toBe(handle.deadline)
      }))
  })

  describe("lifecycle", () => {
    class Greeting extends Context.Service<Greeting, string>()("Greeting") {}

    it.effect("the layer and accessors work on the Timeouts in context", () =>
      Effect.gen(function*() {
        const { platform, probe } = yield* makeTimeoutsPlatform
        const fired: Array<string> = []
        yield* Effect.gen(function*() {
          // The accessors hand the caller's services to the effect.
          const h = yield* Timeouts.after("1 second", Effect.map(Greeting, (g) => void fired.push(g))).pipe(
            Effect.provideService(Greeting, "after")
          )
          yield* Timeouts.at(500, Effect.sync(() => void fired.push("at")))
          const tick = yield* Timeouts.every("400 millis", Effect.sync(() => void fired.push("every")))
          expect((yield* Timeouts.pending).map((t) => t.deadline)).toEqual([400, 500, 1_000])
          yield* advance(probe, 1_000)
          yield* eventually(holds(() => h.fired === 1), "the last one fired")
          expect(fired).toEqual(["every", "at", "every", "after"])
          expect(yield* tick.cancel).toBe(true)
          expect(yield* Timeouts.stats).toMatchObject({ scheduled: 3, fired: 4, cancelled: 1, pending: 0 })
        }).pipe(Effect.provide(Timeouts.layer().pipe(Layer.provide(Layer.succeed(Platform, platform)))))
      }))

    it.effect("closing the scope releases the timer; pending timeouts never fire", () =>
      Effect.gen(function*() {
        const { platform, probe } = yield* makeTimeoutsPlatform
        const scope = yield* Scope.make()
        const timeouts = yield* Timeouts.make().pipe(Effect.provideService(Platform, platform), Scope.provide(scope))
        let fired = 0
        yield* timeouts.after(10, Effect.sync(() => void fired++))
        yield* eventually(Effect.map(TestTime.pendingSleeps, (s) => s.includes(10)), "armed")
        yield* Scope.close(scope, Exit.void)
        yield* TestClock.adjust(100)
        expect(fired).toBe(0)
        expect(probe.arms).toEqual([10])
      }))
  })

  describe("the heap", () => {
    interface Item extends HeapItem {
      readonly id: number
    }

    it("pops in (deadline, seq) order under random inserts and removals", () => {
      const op = fc.oneof(
        fc.record({ kind: fc.constant("push" as const), deadline: fc.integer({ min: 0, max: 20 }) }),
        fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }),
        fc.record({ kind: fc.constant("pop" as const) })
      )
      fc.assert(
        fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
          const heap = new DeadlineHeap<Item>()
          let model: Array<Item> = []
          let seq = 0
          const byKey = (a: Item, b: Item) => a.deadline - b.deadline || a.seq - b.seq
          for (const o of ops) {
            if (o.kind === "push") {
              const item: Item = { id: seq, deadline: o.deadline, seq: seq++, heapIndex: -1 }
              heap.push(item)
              model.push(item)
            } else if (o.kind === "remove") {
              if (model.length === 0) continue
              const victim = model[o.pick % model.length]
              expect(heap.remove(victim)).toBe(true)
              expect(heap.remove(victim)).toBe(false)
              model = model.filter((m) => m !== victim)
            } else {
              model.sort(byKey)
              expect(heap.pop()).toBe(model.shift())
            }
            expect(heap.size).toBe(model.length)
            heap.items.forEach((item, i) => expect(item.heapIndex).toBe(i))
          }
          model.sort(byKey)
          for (const item of model) expect(heap.pop()).toBe(item)
          expect(heap.pop()).toBeUndefined()
        }),
        { seed: 42, numRuns: 200 }
      )
    })
  })
})
