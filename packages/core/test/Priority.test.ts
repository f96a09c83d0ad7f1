import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { Effect, Result, Schema } from "effect"
import * as Priority from "../src/Priority.js"

describe("Priority", () => {
  describe("Priority schema", () => {
    it.effect("decodes each of the three levels to itself", () =>
      Effect.gen(function*() {
        for (const level of ["High", "Normal", "Low"] as const) {
          expect(yield* Schema.decodeUnknownEffect(Priority.Priority)(level)).toBe(level)
        }
      }))

    it("rejects anything else, including other spellings and numbers", () => {
      const decode = Schema.decodeUnknownResult(Priority.Priority)
      for (const bad of ["high", "HIGH", "Urgent", "", " Normal", 0, 1, -1, null, undefined, {}, ["High"]]) {
        expect(Result.isFailure(decode(bad)), `accepted ${JSON.stringify(bad)}`).toBe(true)
      }
    })

    it("encodes a level to the same string, for JSON output", () => {
      expect(Schema.encodeSync(Priority.Priority)("Low")).toBe("Low")
      expect(JSON.stringify(Schema.encodeSync(Schema.Array(Priority.Priority))(["High", "Normal"]))).toBe(
        `["High","Normal"]`
      )
    })
  })

  describe("all", () => {
    it("lists the levels highest first, each once", () => {
      expect(Priority.all).toEqual(["High", "Normal", "Low"])
    })
  })

  describe("toIndex / fromIndex", () => {
    it("maps High, Normal, Low to 0, 1, 2", () => {
      expect(Priority.toIndex("High")).toBe(0)
      expect(Priority.toIndex("Normal")).toBe(1)
      expect(Priority.toIndex("Low")).toBe(2)
    })

    it("maps 0, 1, 2 back to High, Normal, Low", () => {
      expect(Priority.fromIndex(0)).toBe("High")
      expect(Priority.fromIndex(1)).toBe("Normal")
      expect(Priority.fromIndex(2)).toBe("Low")
    })

    it("round-trips both ways and agrees with the position in all", () => {
      for (const level of Priority.all) {
        expect(Priority.fromIndex(Priority.toIndex(level))).toBe(level)
        expect(Priority.all[Priority.toIndex(level)]).toBe(level)
      }
      for (const index of [0, 1, 2] as const) {
        expect(Priority.toIndex(Priority.fromIndex(index))).toBe(index)
      }
    })
  })

  describe("toScheduling", () => {
    it("gives High 1, Normal 0 and Low -1", () => {
      expect(Priority.toScheduling("High")).toBe(1)
      expect(Priority.toScheduling("Normal")).toBe(0)
      expect(Priority.toScheduling("Low")).toBe(-1)
    })

    it("is strictly decreasing along all, so a higher level always schedules first", () => {
      const numbers = Priority.all.map(Priority.toScheduling)
      for (let i = 1; i < numbers.length; i++) {
        expect(numbers[i - 1]).toBeGreaterThan(numbers[i])
      }
    })

    it("round-trips through fromNumber", () => {
      for (const level of Priority.all) {
        expect(Priority.fromNumber(Priority.toScheduling(level))).toBe(level)
      }
    })
  })

  describe("fromNumber", () => {
    it("treats any positive number as High", () => {
      for (const n of [1, 2, 0.5, 1e-9, 100, Number.MAX_SAFE_INTEGER, Infinity]) {
        expect(Priority.fromNumber(n)).toBe("High")
      }
    })

    it("treats any negative number as Low", () => {
      for (const n of [-1, -2, -0.5, -1e-9, -100, Number.MIN_SAFE_INTEGER, -Infinity]) {
        expect(Priority.fromNumber(n)).toBe("Low")
      }
    })

    it("treats zero (either sign) as Normal", () => {
      expect(Priority.fromNumber(0)).toBe("Normal")
      expect(Priority.fromNumber(-0)).toBe("Normal")
    })

    it("falls back to Normal for NaN rather than an extreme level", () => {
      expect(Priority.fromNumber(NaN)).toBe("Normal")
    })
  })

  describe("isPriority", () => {
    it("accepts the three levels", () => {
      for (const level of ["High", "Normal", "Low"]) {
        expect(Priority.isPriority(level)).toBe(true)
      }
    })

    it("rejects other values", () => {
      for (const bad of ["high", "low", "Medium", "", 0, 1, -1, true, null, undefined, {}, ["Low"], Symbol("High")]) {
        expect(Priority.isPriority(bad)).toBe(false)
      }
    })

    it("narrows unknown input so it can be used as a Priority", () => {
      const input: unknown = JSON.parse(`"Low"`)
      if (!Priority.isPriority(input)) throw new Error("expected a priority")
      expect(Priority.toIndex(input)).toBe(2)
    })
  })
})
