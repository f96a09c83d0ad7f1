import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Schema } from "effect"
import * as Agenda from "../src/Agenda.js"
import { InvalidOptions } from "../src/AgendaError.js"
import * as Options from "../src/Options.js"
import * as PromiseAgenda from "../src/PromiseAgenda.js"

const millis = (input: unknown) => {
  const decoded = Options.decodeDuration("d", input)
  return Either.isRight(decoded) ? Duration.toMillis(decoded.right) : decoded.left
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
    expect(Either.isLeft(Options.decodeFiniteDuration("every", "infinity"))).toBe(true)
    expect(Either.isLeft(Options.decodeFiniteDuration("every", Infinity))).toBe(true)
    expect(Either.isRight(Options.decodeFiniteDuration("every", "2 seconds"))).toBe(true)
    expect(Schema.decodeUnknownEither(Options.Duration)("infinity")._tag).toBe("Right")
    expect(Schema.decodeUnknownEither(Options.FiniteDuration)("infinity")._tag).toBe("Left")
  })

  it("decodeQuitOptions: absent and infinite timeouts mean no bound; bad ones are typed errors", () => {
    expect(Options.decodeQuitOptions(undefined)).toEqual(Either.right({ timeout: undefined }))
    expect(Options.decodeQuitOptions({})).toEqual(Either.right({ timeout: undefined }))
    expect(Options.decodeQuitOptions({ timeout: "infinity" })).toEqual(Either.right({ timeout: undefined }))
    const five = Options.decodeQuitOptions({ timeout: "5 seconds" })
    expect(Either.isRight(five) && Duration.toMillis(five.right.timeout!)).toBe(5000)
    for (const timeout of [-1, "3000", null, "-5 seconds"]) {
      const decoded = Options.decodeQuitOptions({ timeout })
      expect(Either.isLeft(decoded) && decoded.left).toMatchObject({ _tag: "InvalidOptions", option: "timeout", value: timeout })
    }
    expect(Either.isLeft(Options.decodeQuitOptions(null))).toBe(true)
  })

  it("decodeAgendaOptions names nested options and rejects what is not an option set", () => {
    const option = (input: unknown) => {
      const decoded = Options.decodeAgendaOptions(input)
      return Either.isLeft(decoded) ? decoded.left.option : "accepted"
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
          expect(Either.isLeft(fromSchema)).toBe(true)
          const expected = Either.isLeft(fromSchema) ? fromSchema.left : undefined
          const fromSubmit = yield* Effect.flip(agenda.submit(Effect.void, options as {}))
          const fromUnsafe = agenda.unsafeSubmit(Effect.void, options as {})
          expect(fromSubmit).toEqual(expected)
          expect(fromUnsafe).toEqual(expected)
        }
        const fromAdd = yield* Effect.flip(Effect.tryPromise({
          try: () => queue.add(() => 1, { label: 3 as unknown as string }),
          catch: (e) => e
        }))
        expect(fromAdd).toEqual(Either.getLeft(Options.decodeTaskletOptions({ label: 3 })).pipe((o) => o._tag === "Some" ? o.value : undefined))
      } finally {
        yield* Effect.promise(() => queue.close("exit"))
      }
    }))
})
