import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { Effect, Schema } from "effect"
import * as Agenda from "../src/Agenda.js"
import { AgendaStats, PriorityStats, ShutdownReport } from "../src/AgendaStats.js"
import { InfoSchema } from "../src/Tasklet.js"
import { WorkerState } from "../src/WorkerState.js"

const summary = { count: 0, min: 0, max: 0, mean: 0 }
const level = (fields: Partial<ConstructorParameters<typeof PriorityStats>[0]>) =>
  new PriorityStats({
    submitted: 0,
    started: 0,
    completed: 0,
    failed: 0,
    interrupted: 0,
    dropped: 0,
    obsolete: 0,
    queued: 0,
    running: 0,
    blockedSubmitters: 0,
    waitTime: summary,
    runTime: summary,
    ...fields
  })

describe("AgendaStats", () => {
  it("PriorityStats.balanced holds only when every tasklet is accounted for", () => {
    const ok = level({ submitted: 10, completed: 4, failed: 1, interrupted: 1, dropped: 1, obsolete: 1, queued: 1, running: 1 })
    expect(ok.ended).toBe(8)
    expect(ok.balanced).toBe(true)
    expect(level({ submitted: 3, completed: 1 }).balanced).toBe(false)
    expect(level({ submitted: 1, completed: 2 }).balanced).toBe(false)
  })

  it.effect("a shutdown report survives a JSON round trip through its Schema", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ name: "roundtrip", workers: 2 })
      yield* agenda.run(Effect.void, { priority: "High", label: "one" })
      yield* Effect.exit(agenda.run(Effect.fail("no"), { label: "two" }))
      const report = yield* agenda.quit()
      const json = JSON.stringify(Schema.encodeSync(ShutdownReport)(report))
      const back = Schema.decodeUnknownSync(ShutdownReport)(JSON.parse(json))
      expect(back).toEqual(report)
      expect(back.stats.total.balanced).toBe(true)
      expect(back.stats.name).toBe("roundtrip")
      expect(back.stats.workers.map((w) => w.id)).toEqual([0, 1])
    }))

  it("rejects malformed snapshots with a parse error", () => {
    expect(() => Schema.decodeUnknownSync(AgendaStats)({ name: "x" })).toThrow(/state/)
    expect(() => Schema.decodeUnknownSync(WorkerState)({ id: 0, state: "Sleeping" })).toThrow(/Sleeping|state/)
  })

  it.effect("tasklet info decodes with its Schema", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make()
      const handle = yield* agenda.submit(Effect.succeed(1), { label: "info", obsoleteAfter: "1 minute" })
      yield* handle.await
      const info = Schema.decodeUnknownSync(InfoSchema)(JSON.parse(JSON.stringify(handle)))
      expect(info).toMatchObject({ id: handle.id, label: "info", status: "Done", outcome: "Completed", attempts: 1 })
      expect(info.obsoleteAt).toBe(handle.createdAt + 60_000)
      expect(String(handle)).toBe(`Tasklet#${handle.id}(info, Normal, Completed)`)
    }))
})
