import { describe, it } from "@effect/vitest"
import { Duration, Effect, Result, Schema } from "effect"
import { expect } from "vitest"
import * as Agenda from "../src/Agenda.js"
import { InvalidOptions } from "../src/AgendaError.js"
import * as Options from "../src/Options.js"
import * as PromiseAgenda from "../src/PromiseAgenda.js"

const millis = (input: unknown) => {
  const decoded = Options.decodeDuration("d", input)
  return Result.isSuccess(decoded) ? Duration.toMillis(decoded.success) : decoded.failure
}

describe("Options", () => {
  it("accepts every DurationInput form and \"infinity\"", () => {
    expect(millis(5000)).toBe(5000)
    expect(millis(0)).toBe(0)
    expect(millis("5 seconds")).toBe(5000)
    expect(millis("1.5 seconds")).toBe(1500)
    expect(millis(5_000_000n)).toBe(5)
    expect(millis([2, 500_000_000])).toBe(2500)
    expect(millis(Duration.minutes(1))).toBe(60_000)
    expect(millis("infinity")).toBe(Infinity)
    expect(millis(Infinity)).toBe(Infinity)
  })

  it("rejects negative, NaN, malformed and null durations with InvalidOptions naming the option", () => {
    for (const bad of [-1, -5000, NaN, "-5 seconds", "3000", "soon", "", null, [-1, 0], [1, NaN], [1], -10n, {}, true]) {
      const error = millis(bad)
      expect(error).toBeInstanceOf(InvalidOptions)
      expect(error).toMatchObject({ option: "d", value: bad })
      expect((error as InvalidOptions).expected).toContain("non-negative Duration")
    }
  })

  it("FiniteDuration rejects infinite durations; Duration accepts them", () => {
    expect(Result.isFailure(Options.decodeFiniteDuration("every", "infinity"))).toBe(true)
    expect(Result.isFailure(Options.decodeFiniteDuration("every", Infinity))).toBe(true)
    expect(Result.isSuccess(Options.decodeFiniteDuration("every", "2 seconds"))).toBe(true)
    expect(Schema.decodeUnknownExit(Options.Duration)("infinity")._tag).toBe("Success")
    expect(Schema.decodeUnknownExit(Options.FiniteDuration)("infinity")._tag).toBe("Failure")
  })

  it("decodeQuitOptions: absent and infinite timeouts mean no bound; bad ones are typed errors", () => {
    expect(Options.decodeQuitOptions(undefined)).toEqual(Result.succeed({ timeout: undefined }))
    expect(Options.decodeQuitOptions({})).toEqual(Result.succeed({ timeout: undefined }))
    expect(Options.decodeQuitOptions({ timeout: "infinity" })).toEqual(Result.succeed({ timeout: undefined }))
    const five = Options.decodeQuitOptions({ timeout: "5 seconds" })
    expect(Result.isSuccess(five) && Duration.toMillis(five.success.timeout!)).toBe(5000)
    for (const timeout of [-1, "3000", null, "-5 seconds"]) {
      const decoded = Options.decodeQuitOptions({ timeout })
      expect(Result.isFailure(decoded) && decoded.failure).toMatchObject({ _tag: "InvalidOptions", option: "timeout", value: timeout })
    }
    expect(Result.isFailure(Options.decodeQuitOptions(null))).toBe(true)
  })

  it("decodeAgendaOptions names nested options and rejects what is not an option set", () => {
    const option = (input: unknown) => {
      const decoded = Options.decodeAgendaOptions(input)
      return Result.isFailure(decoded) ? decoded.failure.option : "accepted"
    }
    expect(option(undefined)).toBe("accepted")
    expect(option({ workers: 2, capacity: { High: 10 }, aging: false, closeTimeout: "infinity" })).toBe("accepted")
    expect(option(null)).toBe("options")
    expect(option("fast")).toBe("options")
    expect(option({ capacity: { High: 0 } })).toBe("capacity.High")
    expect(option({ capacity: null })).toBe("capacity")
    expect(option({ scheduler: {} })).toBe("scheduler")
    expect(option({ gcTimeout: "-1 seconds" })).toBe("gcTimeout")
    expect(option({ abandonAfter: NaN })).toBe("abandonAfter")
  })

  it.effect("the same bad tasklet option gets the same error from every entry point", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 1 })
      const queue = PromiseAgenda.make({ workers: 1 })
      try {
        for (const options of [{ obsoleteAfter: "-5 seconds" }, { priority: "Urgent" }, { label: 3 }, null]) {
          const fromSchema = Options.decodeTaskletOptions(options)
          expect(Result.isFailure(fromSchema)).toBe(true)
          const expected = Result.isFailure(fromSchema) ? fromSchema.failure : undefined
          const fromSubmit = yield* Effect.flip(agenda.submit(Effect.void, options as {}))
          const fromUnsafe = agenda.unsafeSubmit(Effect.void, options as {})
          expect(fromSubmit).toEqual(expected)
          expect(fromUnsafe).toEqual(expected)
        }
        const fromAdd = yield* Effect.flip(Effect.tryPromise({
          try: () => queue.add(() => 1, { label: 3 as unknown as string }),
          catch: (e) => e
        }))
        expect(fromAdd).toEqual(Result.getFailure(Options.decodeTaskletOptions({ label: 3 })).pipe((o) => o._tag === "Some" ? o.value : undefined))
      } finally {
        yield* Effect.promise(() => queue.close("exit"))
      }
    }))
})
