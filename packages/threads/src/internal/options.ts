/**
 * Decoding of `ThreadAgenda` options that need more than a range check.
 *
 * @internal
 */
import { InvalidOptions } from "@refpersys/core/AgendaError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
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

const reasons: Record<keyof typeof minimumResourceLimits, string> = {
  maxOldGenerationSizeMb: "a thread needs about 15 MB of old generation to load Effect and its task modules, " +
    "and does not start with less",
  maxYoungGenerationSizeMb: "with less, newer Node versions abort the whole process while the thread starts",
  codeRangeSizeMb: "a size in MB",
  stackSizeMb: "a thread's stack, in MB"
}

const fieldSchema = (minimum: number) => Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(minimum))

const fieldSchemas = {
  maxOldGenerationSizeMb: fieldSchema(minimumResourceLimits.maxOldGenerationSizeMb),
  maxYoungGenerationSizeMb: fieldSchema(minimumResourceLimits.maxYoungGenerationSizeMb),
  codeRangeSizeMb: fieldSchema(minimumResourceLimits.codeRangeSizeMb),
  stackSizeMb: fieldSchema(minimumResourceLimits.stackSizeMb)
}

/** The `resourceLimits` option: each field unset (Node's default) or at least its minimum. */
export const ResourceLimitsSchema = Schema.Struct({
  maxOldGenerationSizeMb: Schema.optional(fieldSchemas.maxOldGenerationSizeMb),
  maxYoungGenerationSizeMb: Schema.optional(fieldSchemas.maxYoungGenerationSizeMb),
  codeRangeSizeMb: Schema.optional(fieldSchemas.codeRangeSizeMb),
  stackSizeMb: Schema.optional(fieldSchemas.stackSizeMb)
})

const decodeEither = Schema.decodeUnknownEither(ResourceLimitsSchema)
const fields = Object.keys(minimumResourceLimits) as Array<keyof typeof minimumResourceLimits>
const isField = (field: keyof typeof minimumResourceLimits, value: unknown): boolean =>
  value === undefined || Schema.is(fieldSchemas[field])(value)

/** Checks `resourceLimits`, naming the first field out of range and its minimum. */
export const decodeResourceLimits = (input: unknown): Effect.Effect<ResourceLimits | undefined, InvalidOptions> => {
  if (input === undefined) return Effect.succeed(undefined)
  if (Either.isRight(decodeEither(input))) return Effect.succeed(input as ResourceLimits)
  if (typeof input !== "object" || input === null) {
    return Effect.fail(
      new InvalidOptions({ option: "resourceLimits", value: input, expected: "an object of worker_threads ResourceLimits" })
    )
  }
  const field = fields.find((f) => !isField(f, (input as Record<string, unknown>)[f]))
  if (field === undefined) {
    return Effect.fail(new InvalidOptions({ option: "resourceLimits", value: input, expected: "worker_threads ResourceLimits" }))
  }
  return Effect.fail(
    new InvalidOptions({
      option: `resourceLimits.${field}`,
      value: (input as Record<string, unknown>)[field],
      expected: `at least ${minimumResourceLimits[field]} or unset: ${reasons[field]}`
    })
  )
}
