import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Agenda from "../src/Agenda.js"

describe("Agenda", () => {
  it.scoped("runs a tasklet and returns its result", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2 })
      const handle = yield* agenda.submit(Effect.succeed(42), { label: "answer", priority: "High" })
      expect(yield* handle.join).toBe(42)
      expect(handle.outcome).toBe("Completed")
      const stats = yield* agenda.stats
      expect(stats.total.completed).toBe(1)
      expect(stats.total.balanced).toBe(true)
    }))
})
