/**
 * One validation path for option sets: the `effect/Schema` schemas and
 * decoders shared by every entry point that takes durations, quit options or
 * tasklet options (`Agenda`, `PromiseAgenda`, `ThreadAgenda`, ...), so the
 * same input gets the same typed error everywhere.
 *
 * Every decoder fails with {@link InvalidOptions}, naming the option, the
 * value given and what was expected. Decoders return a `Result`: use it
 * synchronously (`Result.isFailure`) or, in an `Effect.gen`, `yield*
 * Effect.fromResult(...)` it.
 *
 * **Durations.** Effect's `Duration.fromInput` keeps negative inputs (a
 * negative `Duration`) and turns `NaN` into zero, so a sign error would become
 * "at once" without a word. The duration schemas here accept Effect's
 * `Duration.Input` forms (a
 * `Duration`, milliseconds as a number, nanoseconds as a bigint,
 * `[seconds, nanos]`, or `"<n> <unit>"`) plus `"infinity"`, and reject
 * negative values, `NaN`, strings that are not `"<n> <unit>"` (e.g. `"3000"`),
 * `null` and anything else; {@link FiniteDuration} also rejects infinite ones.
 *
 * @since 0.1.0
 */
import * as Duration_ from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import type * as Scheduler from "effect/Scheduler"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaParser from "effect/SchemaParser"
import * as SchemaTransformation from "effect/SchemaTransformation"
import { InvalidOptions } from "./AgendaError.js"
import * as issues from "./internal/issues.js"
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
      return DURATION.test(input) ? Duration_.fromInputUnsafe(input.trim() as Duration_.Input) : undefined
    }
    case "object": {
      if (Duration_.isDuration(input)) return input
      if (Array.isArray(input) && input.length === 2 && isNonNegative(input[0]) && isNonNegative(input[1])) {
        return Duration_.fromInputUnsafe(input as unknown as readonly [number, number])
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
 * const decode = Options.decoder(Schema.Struct({ port: Schema.optional(Port) }))
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
): Schema.Codec<A, I> => fromParse(identifier, expected, parse, encode)

/**
 * The issue of an option value that is not what `expected` says; its message
 * is what {@link toInvalidOptions} reports as `expected`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const invalidValue: (input: unknown, expected: string) => SchemaIssue.Issue = issues.invalid

const fromParse = <A, I>(
  identifier: string,
  expected: string,
  parse: (input: unknown) => A | undefined,
  encode: (a: A) => I
): Schema.Codec<A, I> =>
  Schema.Unknown.pipe(
    Schema.decodeTo(
      Schema.declare((u): u is A => parse(u) !== undefined),
      SchemaTransformation.transformEffect<A, unknown>({
        decode: (input) => {
          const a = parse(input)
          return a === undefined ? Effect.fail(invalidValue(input, expected)) : Effect.succeed(a)
        },
        encode: (a) => Effect.succeed(encode(a))
      })
    ),
    Schema.annotate({ identifier, description: expected })
  ) as unknown as Schema.Codec<A, I>

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
 * The input forms of a duration option: Effect's `Duration.Input`, or
 * `"infinity"` (no bound).
 *
 * @since 0.1.0
 * @category models
 */
export type DurationInput = Duration_.Input | "infinity"

/**
 * A non-negative duration, possibly infinite (see the module doc).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Duration: Schema.Codec<Duration_.Duration, DurationInput> = fromParse<
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
export const FiniteDuration: Schema.Codec<Duration_.Duration, Duration_.Input> = fromParse<
  Duration_.Duration,
  Duration_.Input
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
export const QuitOptions: Schema.Codec<{ readonly timeout?: Duration_.Duration | undefined }, QuitOptions> = Schema
  .Struct({ timeout: Schema.optional(Duration) })

/**
 * A tasklet priority: `"High"`, `"Normal"` or `"Low"`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PriorityOption: Schema.Codec<Priority.Priority> = fromParse(
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
export const Label: Schema.Codec<string> = fromParse("Label", "a string", (u) => typeof u === "string" ? u : undefined, (s) => s)

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

const integer = (min: number, max: number): Schema.Codec<number> =>
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
const decodeCapacity = (u: unknown): Effect.Effect<Capacity, SchemaIssue.Issue> => {
  if (isCapacity(u)) return Effect.succeed(u)
  if (typeof u !== "object" || u === null || Array.isArray(u)) {
    return Effect.fail(invalidValue(u, `${CAPACITY_EXPECTED}, or { High?, Normal?, Low? } of such integers`))
  }
  const c = u as Record<string, unknown>
  for (const key of Object.keys(c)) {
    if (key !== "High" && key !== "Normal" && key !== "Low") {
      return Effect.fail(new SchemaIssue.Pointer([key], invalidValue(c[key], `only the levels High, Normal and Low`)))
    }
    if (c[key] !== undefined && !isCapacity(c[key])) {
      return Effect.fail(new SchemaIssue.Pointer([key], invalidValue(c[key], CAPACITY_EXPECTED)))
    }
  }
  return Effect.succeed(c as Capacity)
}

const CapacitySchema: Schema.Codec<Capacity> = Schema.Unknown.pipe(
  Schema.decodeTo(
    Schema.declare((_u): _u is Capacity => true),
    SchemaTransformation.transformEffect<Capacity, unknown>({
      decode: decodeCapacity,
      encode: (c) => Effect.succeed(c)
    })
  ),
  Schema.annotate({ identifier: "Capacity" })
) as unknown as Schema.Codec<Capacity>

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
      (u) => isScheduler(u) ? u : undefined,
      (s) => s
    )
  )
})

// A PriorityScheduler (its `scheduler(level)` gives the level's Scheduler),
// or an Effect Scheduler.
const isScheduler = (u: unknown): u is Scheduler.Scheduler =>
  typeof u === "object" && u !== null &&
  (typeof (u as { scheduler?: unknown }).scheduler === "function" ||
    (typeof (u as Scheduler.Scheduler).makeDispatcher === "function" &&
      typeof (u as Scheduler.Scheduler).shouldYield === "function" &&
      ((u as Scheduler.Scheduler).executionMode === "sync" || (u as Scheduler.Scheduler).executionMode === "async")))

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
export const toInvalidOptions = (issue: SchemaIssue.Issue, input: unknown, option = "options"): InvalidOptions => {
  const { leaf, path } = issues.first(issue)
  if (path.length === 0) {
    // Not an object at all (e.g. `null`): the option set itself is wrong.
    return new InvalidOptions({ option, value: input, expected: "an object of options, or nothing" })
  }
  const name = path.map(String).join(".")
  return new InvalidOptions({
    option: option === "options" ? name : `${option}.${name}`,
    value: valueAt(input, path),
    expected: expectedOf(leaf)
  })
}

const expectedOf = (leaf: SchemaIssue.Issue): string =>
  leaf._tag === "MissingKey" || leaf._tag === "UnexpectedKey" ? "a known option" : issues.message(leaf)

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
 * decode({ every: "-5 seconds" }) // Result.fail(InvalidOptions: option every)
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decoder = <S extends Schema.ConstraintDecoder<unknown>>(
  schema: S,
  option = "options"
): (input: unknown) => Result.Result<S["Type"], InvalidOptions> => {
  const decode = SchemaParser.decodeUnknownExit(schema)
  return (input) => {
    const exit = decode(input)
    if (Exit.isSuccess(exit)) return Result.succeed(exit.value)
    const issue = exit.cause.reasons.find((reason) => reason._tag === "Fail")
    // A decode of these schemas fails with an issue, never dies; if one did,
    // report the option set itself.
    return Result.fail(
      issue === undefined
        ? new InvalidOptions({ option, value: input, expected: "an object of options, or nothing" })
        : toInvalidOptions(issue.error, input, option)
    )
  }
}

/**
 * Decodes one duration option (e.g. `closeTimeout`), possibly infinite.
 *
 * @example
 * ```ts
 * import { Options } from "@refpersys/core"
 *
 * Options.decodeDuration("closeTimeout", "300 millis") // Result.succeed(Duration)
 * Options.decodeDuration("closeTimeout", "-5 seconds") // Result.fail(InvalidOptions)
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeDuration = (option: string, input: unknown): Result.Result<Duration_.Duration, InvalidOptions> => {
  const d = parseDuration(input)
  return d !== undefined
    ? Result.succeed(d)
    : Result.fail(new InvalidOptions({ option, value: input, expected: DURATION_EXPECTED }))
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
): Result.Result<Duration_.Duration, InvalidOptions> => {
  const d = parseDuration(input)
  return d !== undefined && Duration_.isFinite(d)
    ? Result.succeed(d)
    : Result.fail(new InvalidOptions({ option, value: input, expected: FINITE_DURATION_EXPECTED }))
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
 *   const { timeout } = yield* Effect.fromResult(Options.decodeQuitOptions({ timeout: "5 seconds" }))
 *   return timeout
 * })
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeQuitOptions = (input: unknown): Result.Result<DecodedQuitOptions, InvalidOptions> => {
  if (input === undefined) return Result.succeed({ timeout: undefined })
  return Result.map(decodeQuitStruct(input), (o) => ({
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
export const decodeTaskletOptions = (input: unknown): Result.Result<DecodedTaskletOptions, InvalidOptions> => {
  if (input === undefined) return Result.succeed({ priority: "Normal", label: undefined, obsoleteAfter: undefined })
  return Result.map(decodeTaskletStruct(input), (o) => ({
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
export const decodeAgendaOptions: (input: unknown) => Result.Result<typeof AgendaOptions.Type, InvalidOptions> = (() => {
  const decode = decoder(AgendaOptions)
  return (input: unknown) => input === undefined ? Result.succeed({}) : decode(input)
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
) => Result.Result<typeof PromiseAddOptions.Type, InvalidOptions> = (() => {
  const decode = decoder(PromiseAddOptions)
  return (input: unknown) => input === undefined ? Result.succeed({}) : decode(input)
})()
