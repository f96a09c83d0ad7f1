import * as Exit from "effect/Exit"
import type * as Effect from "effect/Effect"

/**
 * Runs a synchronous effect without a fiber step, for the agenda's workers
 * and the loop's inline handlers: an `Exit` (such as `Effect.void`) is its
 * own outcome, an `Effect.sync` calls its thunk, a throw becomes a defect as
 * in a fiber. Returns `undefined` for any other effect, which the caller runs
 * on its fiber.
 *
 * Reads the `Sync` primitive's fields as Effect 3 lays them out; an effect
 * not shaped so is simply not recognised. Measured: a trivial tasklet cost a
 * third as much this way, and a loop handler half as much.
 *
 * @internal
 */
export const runSync = (effect: Effect.Effect<unknown, unknown>): Exit.Exit<unknown, unknown> | undefined => {
  if (Exit.isExit(effect)) return effect
  const primitive = effect as unknown as { readonly _op?: unknown; readonly effect_instruction_i0?: unknown }
  if (primitive._op !== "Sync" || typeof primitive.effect_instruction_i0 !== "function") return undefined
  try {
    const value = (primitive.effect_instruction_i0 as () => unknown)()
    return value === undefined ? Exit.void : Exit.succeed(value)
  } catch (error) {
    return Exit.die(error)
  }
}
