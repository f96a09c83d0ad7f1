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
export const Priority: Schema.Literal<["High", "Normal", "Low"]> = Schema.Literals(["High", "Normal", "Low"])

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
 * The Effect scheduling priority a fiber runs at for a level: `High` is 1,
 * `Normal` is 0 (the default of every Effect fiber, so Effect's own internal
 * fibers run at `Normal`), `Low` is -1. The `PriorityScheduler` runs higher
 * numbers first.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Priority } from "@refpersys/core"
 *
 * const urgent = Effect.withSchedulingPriority(Effect.log("now"), Priority.toScheduling("High"))
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const toScheduling = (priority: Priority): number => priority === "High" ? 1 : priority === "Normal" ? 0 : -1

/**
 * The level for an Effect scheduling priority or a p-queue style number:
 * positive is `High`, zero is `Normal`, negative is `Low`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromNumber = (n: number): Priority => n > 0 ? "High" : n < 0 ? "Low" : "Normal"

/**
 * Returns `true` when the argument is one of the three levels; use it to check
 * untyped input before it reaches the agenda.
 *
 * @since 0.1.0
 * @category guards
 */
export const isPriority: (u: unknown) => u is Priority = Schema.is(Priority)
