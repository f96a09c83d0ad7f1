/**
 * One validation path for option sets: the `effect/Schema` schemas and
 * decoders shared by every entry point that takes durations, quit options or
 * tasklet options (`Agenda`, `PromiseAgenda`, `ThreadAgenda`, ...), so the
 * same input gets the same typed error everywhere.
 *
 * Every decoder fails with {@link InvalidOptions}, naming the option, the
 * value given and what was expected. Decoders return an `Either`, which is
 * also an `Effect`: use it synchronously (`Either.isLeft`) or `yield*` it.
 *
 * **Durations.** Effect's `Duration.decode` clamps negative inputs to zero and
 * turns `NaN` into zero, so a sign error would become "at once" without a
 * word. The duration schemas here accept Effect's `DurationInput` forms (a
 * `Duration`, milliseconds as a number, nanoseconds as a bigint,
 * `[seconds, nanos]`, or `"<n> <unit>"`) plus `"infinity"`, and reject
 * negative values, `NaN`, strings that are not `"<n> <unit>"` (e.g. `"3000"`),
 * `null` and anything else; {@link FiniteDuration} also rejects infinite ones.
 *
 * @since 0.1.0
 */
import * as Duration_ from "effect/Duration"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import type * as Scheduler from "effect/Scheduler"
import * as Schema from "effect/Schema"
import { InvalidOptions } from "./AgendaError.js"
import * as Priority from "./Priority.js"

const DURATION = /^\s*(\d+(?:\.\d+)?)\s+(nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?)\s*$/

const isNonNegative = (n: unknown): n is number => typeof n === "number" && n >= 0

/**
 * Parses a duration input, or returns `undefined` when it is not a
 * non-negative duration. `Infinity` (number, array member, `"infinity"`) gives
 * `Duration.infinity`. This is the function behind {@link Duration}; it is
 * exported for hot paths that must not pay for a Schema decode when the input
 * is valid (they must still report errors through the schema's decoder).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseDuration = (input: unknown): Duration_.Duration | undefined => {
  switch (typeof input) {
    case "number":
      return input >= 0 ? Duration_.millis(input) : undefined
    case "bigint":
      return input >= BigInt(0) ? Duration_.nanos(input) : undefined
    case "string": {
      if (/^\s*infinity\s*$/i.test(input)) return Duration_.infinity
      return DURATION.test(input) ? Duration_.decode(input.trim() as Duration_.DurationInput) : undefined
    }
    case "object": {
      if (Duration_.isDuration(input)) return input
      if (Array.isArray(input) && input.length === 2 && isNonNegative(input[0]) && isNonNegative(input[1])) {
        return Duration_.decode(input as unknown as readonly [number, number])
      }
      return undefined
    }
    default:
      return undefined
  }
}

/**
 * Builds an option's schema from `unknown` whose decoding is `parse`
 * (`undefined`: rejected); a failure carries `expected` as its message,
 * which the decoders turn into `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Options } from "@refpersys/core"
 *
 * const Port = Options.option("Port", "an integer from 1 to 65535", (u) =>
 *   typeof u === "number" && Number.isInteger(u) && u >= 1 && u <= 65535 ? u : undefined, (n) => n)
 * const decode = Options.decoder(Schema.Struct({ port: Port }))
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const option = <A, I>(
  identifier: string,
  expected: string,
  parse: (input: unknown) => A | undefined,
  encode: (a: A) => I
): Schema.Schema<A, I> => fromParse(identifier, expected, parse, encode)

const fromParse = <A, I>(
  identifier: string,
  expected: string,
  parse: (input: unknown) => A | undefined,
  encode: (a: A) => I
): Schema.Schema<A, I> =>
  Schema.transformOrFail(Schema.Unknown, Schema.declare((u): u is A => parse(u) !== undefined), {
    strict: true,
    decode: (input, _, ast) => {
      const a = parse(input)
      return a === undefined ? ParseResult.fail(new ParseResult.Type(ast, input, expected)) : ParseResult.succeed(a)
    },
    encode: (a) => ParseResult.succeed(encode(a))
  }).annotations({ identifier, description: expected }) as unknown as Schema.Schema<A, I>

/**
 * What a duration option must be, as error messages say it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const DURATION_EXPECTED =
  `a non-negative Duration such as "5 seconds", 5000 (millis), [5, 0] or "infinity"`

/**
 * What a finite duration option must be, as error messages say it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FINITE_DURATION_EXPECTED = `a finite non-negative Duration such as "5 seconds" or 5000 (millis)`

/**
 * The input forms of a duration option: Effect's `DurationInput`, or
 * `"infinity"` (no bound).
 *
 * @since 0.1.0
 * @category models
 */
export type DurationInput = Duration_.DurationInput | "infinity"

/**
 * A non-negative duration, possibly infinite (see the module doc).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Duration: Schema.Schema<Duration_.Duration, DurationInput> = fromParse<
  Duration_.Duration,
  DurationInput
>(
  "Duration",
  DURATION_EXPECTED,
  parseDuration,
  (d) => d
)

/**
 * A finite non-negative duration.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FiniteDuration: Schema.Schema<Duration_.Duration, Duration_.DurationInput> = fromParse<
  Duration_.Duration,
  Duration_.DurationInput
>(
  "FiniteDuration",
  FINITE_DURATION_EXPECTED,
  (u) => {
    const d = parseDuration(u)
    return d !== undefined && Duration_.isFinite(d) ? d : undefined
  },
  (d) => d
)

/**
 * Options of `quit` (`Agenda.quit`, `ThreadAgenda.quit`, ...).
 *
 * @since 0.1.0
 * @category models
 */
export interface QuitOptions {
  /**
   * After this long, stop draining: interrupt running tasklets and drop
   * queued ones. `"infinity"` or absent: drain for as long as it takes.
   */
  readonly timeout?: DurationInput | undefined
}

/**
 * Decoded {@link QuitOptions}: `timeout` is `undefined` when absent or infinite.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodedQuitOptions {
  readonly timeout: Duration_.Duration | undefined
}

/**
 * Schema of {@link QuitOptions}.
 *
 * @since 0.1.0
 * @category schemas
 */
export const QuitOptions: Schema.Schema<{ readonly timeout?: Duration_.Duration | undefined }, QuitOptions> = Schema
  .Struct({ timeout: Schema.optional(Duration) }) as any

/**
 * A tasklet priority: `"High"`, `"Normal"` or `"Low"`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PriorityOption: Schema.Schema<Priority.Priority> = fromParse(
  "Priority",
  `one of "High", "Normal", "Low"`,
  (u) => (u === "High" || u === "Normal" || u === "Low" ? u : undefined),
  (p) => p
)

/**
 * A label: any string.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Label: Schema.Schema<string> = fromParse("Label", "a string", (u) => typeof u === "string" ? u : undefined, (s) => s)

/**
 * Schema of `Tasklet.Options` (the options of `submit`, `trySubmit`,
 * `unsafeSubmit`, `run`). `obsoleteAfter` may be infinite (never obsolete).
 *
 * @since 0.1.0
 * @category schemas
 */
export const TaskletOptions = Schema.Struct({
  priority: Schema.optional(PriorityOption),
  label: Schema.optional(Label),
  obsoleteAfter: Schema.optional(Duration)
})

/**
 * Decoded tasklet options; `obsoleteAfter` is `undefined` when absent or infinite.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodedTaskletOptions {
  readonly priority: Priority.Priority
  readonly label: string | undefined
  readonly obsoleteAfter: Duration_.Duration | undefined
}

const integer = (min: number, max: number): Schema.Schema<number> =>
  fromParse(
    "Integer",
    `an integer from ${min} to ${max}`,
    (u) => typeof u === "number" && Number.isInteger(u) && u >= min && u <= max ? u : undefined,
    (n) => n
  )

const isCapacity = (u: unknown): u is number =>
  typeof u === "number" && Number.isInteger(u) && u >= 1 && u <= Number.MAX_SAFE_INTEGER

/**
 * Queue capacity: one positive integer for all levels, or some levels' own.
 *
 * @since 0.1.0
 * @category models
 */
export type Capacity = number | { readonly High?: number; readonly Normal?: number; readonly Low?: number }

const CAPACITY_EXPECTED = `an integer from 1 to ${Number.MAX_SAFE_INTEGER}`

/**
 * A capacity: a positive integer, or an object of them per level. A bad level
 * is reported at its own path (`capacity.High`).
 */
const CapacitySchema: Schema.Schema<Capacity> = Schema.transformOrFail(
  Schema.Unknown,
  Schema.declare((_u): _u is Capacity => true),
  {
    strict: true,
    decode: (u, _, ast) => {
      if (isCapacity(u)) return ParseResult.succeed(u)
      if (typeof u !== "object" || u === null || Array.isArray(u)) {
        return ParseResult.fail(
          new ParseResult.Type(ast, u, `${CAPACITY_EXPECTED}, or { High?, Normal?, Low? } of such integers`)
        )
      }
      const c = u as Record<string, unknown>
      for (const key of Object.keys(c)) {
        if (key !== "High" && key !== "Normal" && key !== "Low") {
          return ParseResult.fail(
            new ParseResult.Pointer(key, u, new ParseResult.Type(ast, c[key], `only the levels High, Normal and Low`))
          )
        }
        if (c[key] !== undefined && !isCapacity(c[key])) {
          return ParseResult.fail(new ParseResult.Pointer(key, u, new ParseResult.Type(ast, c[key], CAPACITY_EXPECTED)))
        }
      }
      return ParseResult.succeed(c as Capacity)
    },
    encode: ParseResult.succeed
  }
).annotations({ identifier: "Capacity" }) as unknown as Schema.Schema<Capacity>

/**
 * Schema of the option set shared by the agendas (`Agenda.make`,
 * `PromiseAgenda.make`): name, workers, capacity, aging, logFailures,
 * onClose, closeTimeout, gcTimeout, abandonAfter and scheduler. Absent fields keep their
 * defaults, which the constructor applies.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AgendaOptions = Schema.Struct({
  name: Schema.optional(
    fromParse("Name", "a non-empty string", (u) => typeof u === "string" && u.length > 0 ? u : undefined, (s) => s)
  ),
  workers: Schema.optional(integer(1, 1024)),
  capacity: Schema.optional(CapacitySchema),
  aging: Schema.optional(
    fromParse(
      "Aging",
      "an integer from 1 to 1000000, or false for strict priority",
      (u) => u === false || (typeof u === "number" && Number.isInteger(u) && u >= 1 && u <= 1_000_000) ? u : undefined,
      (a) => a
    )
  ),
  logFailures: Schema.optional(
    fromParse("LogFailures", "true or false", (u) => typeof u === "boolean" ? u : undefined, (b) => b)
  ),
  onClose: Schema.optional(
    fromParse(`OnClose`, `"quit" or "exit"`, (u) => u === "quit" || u === "exit" ? u : undefined, (s) => s)
  ),
  closeTimeout: Schema.optional(Duration),
  gcTimeout: Schema.optional(Duration),
  abandonAfter: Schema.optional(Duration),
  scheduler: Schema.optional(
    fromParse(
      "Scheduler",
      "a PriorityScheduler or an Effect Scheduler (with makeDispatcher and shouldYield methods)",
      (u) =>
        typeof u === "object" && u !== null &&
          (typeof (u as { scheduler?: unknown }).scheduler === "function" ||
            (typeof (u as Scheduler.Scheduler).makeDispatcher === "function" &&
              typeof (u as Scheduler.Scheduler).shouldYield === "function"))
          ? u as Scheduler.Scheduler
          : undefined,
      (s) => s
    )
  )
})

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let value = input
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined
    value = (value as Record<PropertyKey, unknown>)[key]
  }
  return value
}

/**
 * The `InvalidOptions` of a failed decode: the first issue's path names the
 * option (`prefix.path`), and its message says what was expected.
 *
 * @since 0.1.0
 * @category decoding
 */
export const toInvalidOptions = (error: ParseResult.ParseError, input: unknown, option = "options"): InvalidOptions => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const path = issue?.path ?? []
  if (path.length === 0) {
    // Not an object at all (e.g. `null`): the option set itself is wrong.
    return new InvalidOptions({ option, value: input, expected: "an object of options, or nothing" })
  }
  const name = path.map(String).join(".")
  const expected = issue?._tag === "Type" || issue?._tag === "Transformation" || issue?._tag === "Refinement"
    ? issue.message
    : "a known option"
  return new InvalidOptions({
    option: option === "options" ? name : `${option}.${name}`,
    value: valueAt(input, path),
    expected
  })
}

/**
 * A decoder of `schema` from `unknown` that fails with `InvalidOptions`.
 * `undefined` input decodes as `{}` when `schema` is a struct of optional
 * fields (an option set that was not given). Unknown keys are ignored.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Options } from "@refpersys/core"
 *
 * const decode = Options.decoder(Schema.Struct({ every: Options.FiniteDuration }))
 * decode({ every: "-5 seconds" }) // Left(InvalidOptions: option every)
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decoder = <A, I>(
  schema: Schema.Schema<A, I>,
  option = "options"
): (input: unknown) => Either.Either<A, InvalidOptions> => {
  const decode = Schema.decodeUnknownEither(schema)
  return (input) => Either.mapLeft(decode(input), (error) => toInvalidOptions(error, input, option))
}

/**
 * Decodes one duration option (e.g. `closeTimeout`), possibly infinite.
 *
 * @example
 * ```ts
 * import { Options } from "@refpersys/core"
 *
 * Options.decodeDuration("closeTimeout", "300 millis") // Right(Duration)
 * Options.decodeDuration("closeTimeout", "-5 seconds") // Left(InvalidOptions)
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeDuration = (option: string, input: unknown): Either.Either<Duration_.Duration, InvalidOptions> => {
  const d = parseDuration(input)
  return d !== undefined
    ? Either.right(d)
    : Either.left(new InvalidOptions({ option, value: input, expected: DURATION_EXPECTED }))
}

/**
 * Decodes one finite duration option.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeFiniteDuration = (
  option: string,
  input: unknown
): Either.Either<Duration_.Duration, InvalidOptions> => {
  const d = parseDuration(input)
  return d !== undefined && Duration_.isFinite(d)
    ? Either.right(d)
    : Either.left(new InvalidOptions({ option, value: input, expected: FINITE_DURATION_EXPECTED }))
}

const decodeQuitStruct = decoder(QuitOptions)

/**
 * Decodes the options of `quit`. Absent options, an absent timeout and an
 * infinite timeout all mean "drain without a bound" (`timeout: undefined`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Options } from "@refpersys/core"
 *
 * const program = Effect.gen(function*() {
 *   const { timeout } = yield* Options.decodeQuitOptions({ timeout: "5 seconds" })
 *   return timeout
 * })
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeQuitOptions = (input: unknown): Either.Either<DecodedQuitOptions, InvalidOptions> => {
  if (input === undefined) return Either.right({ timeout: undefined })
  return Either.map(decodeQuitStruct(input), (o) => ({
    timeout: o.timeout !== undefined && Duration_.isFinite(o.timeout) ? o.timeout : undefined
  }))
}

const decodeTaskletStruct = decoder(TaskletOptions)

/**
 * Decodes tasklet options (`Tasklet.Options`). Absent options decode to the
 * defaults (`Normal`, no label, never obsolete).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeTaskletOptions = (input: unknown): Either.Either<DecodedTaskletOptions, InvalidOptions> => {
  if (input === undefined) return Either.right({ priority: "Normal", label: undefined, obsoleteAfter: undefined })
  return Either.map(decodeTaskletStruct(input), (o) => ({
    priority: o.priority ?? "Normal",
    label: o.label,
    obsoleteAfter: o.obsoleteAfter !== undefined && Duration_.isFinite(o.obsoleteAfter) ? o.obsoleteAfter : undefined
  }))
}

/**
 * Decodes the agenda option set; `undefined` decodes as `{}`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeAgendaOptions: (input: unknown) => Either.Either<typeof AgendaOptions.Type, InvalidOptions> = (() => {
  const decode = decoder(AgendaOptions)
  return (input: unknown) => input === undefined ? Either.right({}) : decode(input)
})()

/**
 * Schema of `PromiseAgenda.AddOptions`: `priority` is a level or a finite
 * number (p-queue style: positive High, 0 Normal, negative Low), `signal` an
 * `AbortSignal`, `label` a string.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PromiseAddOptions = Schema.Struct({
  priority: Schema.optional(
    fromParse<Priority.Priority | number, Priority.Priority | number>(
      "PromisePriority",
      `one of "High", "Normal", "Low", or a finite number (positive High, 0 Normal, negative Low)`,
      (u) => u === "High" || u === "Normal" || u === "Low" || (typeof u === "number" && Number.isFinite(u)) ? u : undefined,
      (p) => p
    )
  ),
  signal: Schema.optional(
    fromParse<AbortSignal, AbortSignal>(
      "AbortSignal",
      "an AbortSignal (e.g. new AbortController().signal)",
      (u) => typeof AbortSignal !== "undefined" && u instanceof AbortSignal ? u : undefined,
      (s) => s
    )
  ),
  label: Schema.optional(Label)
})

/**
 * Decodes `PromiseAgenda.AddOptions`; `undefined` decodes as `{}`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodePromiseAddOptions: (
  input: unknown
) => Either.Either<typeof PromiseAddOptions.Type, InvalidOptions> = (() => {
  const decode = decoder(PromiseAddOptions)
  return (input: unknown) => input === undefined ? Either.right({}) : decode(input)
})()
