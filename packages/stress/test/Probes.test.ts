import { describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { expect } from "vitest"
import { waitFor } from "../src/internal/probes.js"

describe("probes", () => {
  it.live("waitFor: a condition that holds is seen at once", () =>
    Effect.gen(function*() {
      expect(yield* waitFor(() => true, "1 second")).toBe(true)
    }))

  it.live("waitFor: a condition that becomes true is seen before the deadline", () =>
    Effect.gen(function*() {
      let looks = 0
      expect(yield* waitFor(() => ++looks >= 3, "10 seconds")).toBe(true)
      expect(looks).toBe(3)
    }))

  it.live("waitFor: a negative timeout (kept by Effect 4's Durations) looks once and gives up", () =>
    Effect.gen(function*() {
      let looks = 0
      const held = yield* waitFor(() => {
        looks++
        return false
      }, Duration.millis(-5_000)).pipe(Effect.timeout("10 seconds"))
      expect(held).toBe(false)
      expect(looks).toBeLessThanOrEqual(2)
    }))
})
