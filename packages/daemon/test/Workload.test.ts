import { it } from "@effect/vitest"
import { describe, expect } from "vitest"
import { Agenda } from "@refpersys/core"
import { AgendaHarness } from "@refpersys/testkit"
import { Effect, Result } from "effect"
import * as Workload from "../src/Workload.js"

describe("Workload.parseMix", () => {
  it("parses three non-negative weights", () => {
    expect(Workload.parseMix("1:3:6")).toEqual(Result.succeed({ High: 1, Normal: 3, Low: 6 }))
    expect(Workload.parseMix(" 0 : 0.5 : 2 ")).toEqual(Result.succeed({ High: 0, Normal: 0.5, Low: 2 }))
  })

  it("refuses anything else with a message naming the flag", () => {
    for (const text of ["1:3", "1:3:6:1", "a:b:c", "1:-1:2", "1::2", "0:0:0", ""]) {
      const parsed = Workload.parseMix(text)
      expect(Result.isFailure(parsed), text).toBe(true)
      if (Result.isFailure(parsed)) expect(parsed.failure).toContain("--mix")
    }
  })
})

describe("Workload.Planner", () => {
  it("splits the rate by the mix and carries fractions over", () => {
    const planner = new Workload.Planner(1000, { High: 1, Normal: 1, Low: 2 })
    expect(planner.due(10)).toEqual({ High: 2, Normal: 2, Low: 5 })
    let total = { High: 2, Normal: 2, Low: 5 }
    for (let i = 0; i < 99; i++) {
      const d = planner.due(10)
      total = { High: total.High + d.High, Normal: total.Normal + d.Normal, Low: total.Low + d.Low }
    }
    // 1 second at 1000/s: 250 + 250 + 500, exactly, whatever the tick size.
    expect(total).toEqual({ High: 250, Normal: 250, Low: 500 })
  })

  it("is within one of the exact count for uneven ticks", () => {
    const planner = new Workload.Planner(777, { High: 1, Normal: 3, Low: 6 })
    const sum = { High: 0, Normal: 0, Low: 0 }
    let elapsed = 0
    for (const ms of [3, 17, 0.5, 40, 9, 13, 1, 250, 7]) {
      const d = planner.due(ms)
      elapsed += ms
      sum.High += d.High
      sum.Normal += d.Normal
      sum.Low += d.Low
    }
    const exact = (share: number) => (777 * share * elapsed) / 1000
    expect(Math.abs(sum.High - exact(0.1))).toBeLessThan(1)
    expect(Math.abs(sum.Normal - exact(0.3))).toBeLessThan(1)
    expect(Math.abs(sum.Low - exact(0.6))).toBeLessThan(1)
  })

  it("gives nothing for a zero weight, a zero rate or a non-positive time", () => {
    expect(new Workload.Planner(1000, { High: 0, Normal: 1, Low: 0 }).due(100)).toEqual({ High: 0, Normal: 100, Low: 0 })
    expect(new Workload.Planner(0, Workload.defaultMix).due(100)).toEqual({ High: 0, Normal: 0, Low: 0 })
    const planner = new Workload.Planner(1000, Workload.defaultMix)
    expect(planner.due(-5)).toEqual({ High: 0, Normal: 0, Low: 0 })
    expect(planner.due(Number.NaN)).toEqual({ High: 0, Normal: 0, Low: 0 })
  })
})

describe("Workload.make", () => {
  it.effect("each tick submits what is due since the last one, and the tasklets run", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2 })
      let now = 0
      const workload = Workload.make(agenda, {
        rate: 1000,
        mix: { High: 1, Normal: 1, Low: 2 },
        workMicros: { High: 0, Normal: 0, Low: 0 },
        now: () => now
      })
      now = 100 // time runs from creation
      yield* workload.tick
      expect(workload.stats().submitted).toEqual({ High: 25, Normal: 25, Low: 50 })
      yield* agenda.whenIdle
      const stats = yield* agenda.stats
      expect(stats.byPriority.High.completed).toBe(25)
      expect(stats.byPriority.Low.completed).toBe(50)
      expect(workload.stats()).toMatchObject({ rate: 1000, ticks: 1, refused: 0, stopped: false })
    }))

  it.effect("makes up for at most maxCatchUpMs after a stall", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 1 })
      let now = 0
      const workload = Workload.make(agenda, {
        rate: 1000,
        mix: { High: 1, Normal: 0, Low: 0 },
        workMicros: { High: 0, Normal: 0, Low: 0 },
        maxCatchUpMs: 50,
        now: () => now
      })
      now = 10_000
      yield* workload.tick
      expect(workload.stats().submitted.High).toBe(50)
    }))

  it.effect("counts submissions refused by a full queue, and stops once the agenda quits", () =>
    Effect.gen(function*() {
      const h = yield* AgendaHarness.make({ workers: 1, capacity: 3 })
      const hold = yield* h.holdWorkers
      let now = 0
      const workload = Workload.make(h.agenda, {
        rate: 1000,
        mix: { High: 0, Normal: 1, Low: 0 },
        workMicros: { High: 0, Normal: 0, Low: 0 },
        now: () => now
      })
      now = 10
      yield* workload.tick
      expect(workload.stats().submitted.Normal).toBe(3)
      expect(workload.stats().refused).toBe(7)
      yield* hold.release
      yield* h.agenda.quit()
      now = 20
      yield* workload.tick
      expect(workload.stats().stopped).toBe(true)
      now = 30
      yield* workload.tick
      expect(workload.stats().submitted.Normal).toBe(3)
      expect(workload.stats().refused).toBe(7)
    }))
})
