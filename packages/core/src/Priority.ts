/**
 * The three priority levels of the agenda, as in the original runtime.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A tasklet priority. `High` work is taken first, `Low` last; aging (see
 * `Agenda`) guarantees that lower levels still progress.
 *
 * @since 0.1.0
 * @category models
 */
export type Priority = "High" | "Normal" | "Low"

/**
 * Schema for {@link Priority}, for configuration, commands and JSON output.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Priority } from "@refpersys/core"
 *
 * Schema.decodeUnknownSync(Priority.Priority)("High") // "High"
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const Priority: Schema.Literals<readonly ["High", "Normal", "Low"]> = Schema.Literals(["High", "Normal", "Low"])

/**
 * All levels, highest first.
 *
 * @since 0.1.0
 * @category constants
 */
export const all: ReadonlyArray<Priority> = ["High", "Normal", "Low"]

/**
 * The index of a level in {@link all}: 0 for `High`, 1 for `Normal`, 2 for `Low`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toIndex = (priority: Priority): 0 | 1 | 2 => priority === "High" ? 0 : priority === "Normal" ? 1 : 2

/**
 * The level at an index of {@link all}.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromIndex = (index: 0 | 1 | 2): Priority => index === 0 ? "High" : index === 1 ? "Normal" : "Low"

/**
 * The p-queue style number of a level: `High` is 1, `Normal` 0, `Low` -1,
 * the inverse of {@link fromNumber}. (In Effect 3 this was also the fiber's
 * scheduling priority; Effect 4 has none: a fiber's level is its scheduler,
 * see `PriorityScheduler.withPriority`.)
 *
 * @example
 * ```ts
 * import { Priority } from "@refpersys/core"
 *
 * Priority.toScheduling("High") // 1
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const toScheduling = (priority: Priority): number => priority === "High" ? 1 : priority === "Normal" ? 0 : -1

/**
 * The level for a p-queue style number: positive is `High`, zero is
 * `Normal`, negative is `Low`. (Effect 4 has no per-fiber scheduling
 * priority; a fiber's level is chosen with `PriorityScheduler.withPriority`.)
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromNumber = (n: number): Priority => n > 0 ? "High" : n < 0 ? "Low" : "Normal"

const isPriorityValue = Schema.is(Priority)

/**
 * Returns `true` when the argument is one of the three levels; use it to check
 * untyped input before it reaches the agenda.
 *
 * @since 0.1.0
 * @category guards
 */
export const isPriority = (u: unknown): u is Priority => isPriorityValue(u)
