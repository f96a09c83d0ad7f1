import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as AgendaHarness from "../src/AgendaHarness.js"

describe("AgendaHarness", () => {
  it.effect("holds every worker so submissions queue, and logs start order", () =>
    Effect.gen(function*() {
      const h = yield* AgendaHarness.make({ workers: 3, aging: false })
      const hold = yield* h.holdWorkers
      expect(h.agenda.unsafeLoad()).toEqual({ queued: 0, running: 3 })
      yield* h.agenda.submit(h.record("low"), { priority: "Low" })
      yield* h.agenda.submit(h.record("high"), { priority: "High" })
      expect(h.agenda.unsafeLoad().queued).toBe(2)
      expect(yield* h.log).toEqual([])
      yield* hold.release
      yield* h.agenda.whenIdle
      expect(yield* h.log).toEqual(["high", "low"])
      const stats = yield* h.balanced
      expect(stats.total.completed).toBe(5)
    }))

  it("Unbalanced explains the mismatch", () => {
    const error = new AgendaHarness.Unbalanced({
      stats: { total: { submitted: 3, completed: 1, failed: 0, interrupted: 0, dropped: 0, obsolete: 0, queued: 0, running: 0 } } as never
    })
    expect(error._tag).toBe("Unbalanced")
    expect(error.message).toBe(
      "agenda accounting does not add up: submitted 3 != completed 1 + failed 0 + interrupted 0 + dropped 0 + obsolete 0 + queued 0 + running 0"
    )
  })
})
