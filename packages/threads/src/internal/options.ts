/**
 * The option set of `ThreadAgenda.make`, as one `effect/Schema`: the fields
 * it shares with the core agendas (name, capacity, aging, logFailures,
 * onClose, closeTimeout, gcTimeout) are core's `Options.AgendaOptions`
 * fields, so the same input gets the same typed error from `Agenda` and
 * `ThreadAgenda`; the rest are the thread pool's own.
 *
 * @internal
 */
import { InvalidOptions } from "@refpersys/core/AgendaError"
import * as Options from "@refpersys/core/Options"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaTransformation from "effect/SchemaTransformation"
import type { ResourceLimits } from "node:worker_threads"

/**
 * The smallest heap limits a thread starts with, in MB. Measured with Node
 * 20: a started thread (Effect, Schema, this package and a task module
 * loaded) uses about 15 MB of old generation and does not start under
 * 18 MB; newer Node aborts the whole process ("GC during deserialization")
 * when the young generation is as small as 1 MB. The minimums keep a margin
 * over both, so that a thread exceeding its limits is a tasklet's doing and
 * ends as a recoverable `ThreadCrashed`.
 */
export const minimumResourceLimits = {
  maxOldGenerationSizeMb: 32,
  maxYoungGenerationSizeMb: 4,
  codeRangeSizeMb: 0,
  stackSizeMb: 1
} as const

type LimitField = keyof typeof minimumResourceLimits

const reasons: Record<LimitField, string> = {
  maxOldGenerationSizeMb: "a thread needs about 15 MB of old generation to load Effect and its task modules, " +
    "and does not start with less",
  maxYoungGenerationSizeMb: "with less, newer Node versions abort the whole process while the thread starts",
  codeRangeSizeMb: "a size in MB",
  stackSizeMb: "a thread's stack, in MB"
}

const limitFields = Object.keys(minimumResourceLimits) as Array<LimitField>

/**
 * A schema from `unknown` whose decoding is `check`; a failure carries
 * `expected` as its message, which `Options.decoder` turns into
 * `InvalidOptions { option, value, expected }`.
 */
const checked = <A>(identifier: string, expected: string, check: (u: unknown) => u is A): Schema.Codec<A, unknown> =>
  Schema.Unknown.pipe(
    Schema.decodeTo(
      Schema.declare(check),
      SchemaTransformation.transformEffect<A, unknown>({
        decode: (u) => check(u) ? Effect.succeed(u) : Effect.fail(new SchemaIssue.InvalidValue({ message: expected }, u)),
        encode: Effect.succeed
      })
    ),
    Schema.annotate({ identifier })
  )

const integer = (min: number, max: number) =>
  checked(
    "Integer",
    `an integer from ${min} to ${max}`,
    (u): u is number => typeof u === "number" && Number.isInteger(u) && u >= min && u <= max
  )

/** `resourceLimits`: each field unset (Node's default) or at least its minimum, reported at its own path. */
const checkLimits = (u: unknown): Effect.Effect<ResourceLimits, SchemaIssue.Issue> => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) {
    return Effect.fail(new SchemaIssue.InvalidValue({ message: "an object of worker_threads ResourceLimits" }, u))
  }
  const limits = u as Record<string, unknown>
  for (const field of limitFields) {
    const value = limits[field]
    const minimum = minimumResourceLimits[field]
    if (value === undefined || (typeof value === "number" && Number.isFinite(value) && value >= minimum)) continue
    return Effect.fail(
      new SchemaIssue.Pointer(
        [field],
        new SchemaIssue.InvalidValue(
          { message: `a number of MB, at least ${minimum}, or unset: ${reasons[field]}` },
          value
        )
      )
    )
  }
  return Effect.succeed(u as ResourceLimits)
}

const ResourceLimitsSchema: Schema.Codec<ResourceLimits, unknown> = Schema.Unknown.pipe(
  Schema.decodeTo(
    Schema.declare((_u): _u is ResourceLimits => true),
    SchemaTransformation.transformEffect<ResourceLimits, unknown>({
      decode: checkLimits,
      encode: Effect.succeed
    })
  ),
  Schema.annotate({ identifier: "ResourceLimits" })
)

// Not ThreadAgenda's: the core agenda's worker fibers, scheduler and
// abandonment of tasklets that ignore interruption (exit terminates threads).
const { abandonAfter: _abandonAfter, scheduler: _scheduler, workers: _workers, ...shared } = Options.AgendaOptions.fields

/** Schema of `ThreadAgenda.Options`. */
export const ThreadAgendaOptions = Schema.Struct({
  ...shared,
  threads: Schema.optional(integer(1, 256)),
  localQueue: Schema.optional(integer(1, 65_536)),
  concurrency: Schema.optional(integer(1, 65_536)),
  resourceLimits: Schema.optional(ResourceLimitsSchema),
  heapCollection: Schema.optional(
    checked(
      "HeapCollection",
      `"exposed", "force" or "off"`,
      (u): u is "exposed" | "force" | "off" => u === "exposed" || u === "force" || u === "off"
    )
  )
})

const decode = Options.decoder(ThreadAgendaOptions)

/** Decodes `ThreadAgenda.Options`; `undefined` decodes as `{}`. */
export const decodeThreadAgendaOptions = (
  input: unknown
): Result.Result<typeof ThreadAgendaOptions.Type, InvalidOptions> =>
  input === undefined ? Result.succeed({}) : decode(input)
