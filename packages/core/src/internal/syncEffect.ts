import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/**
 * The marker of `Tasklet.sync` effects: the thunk, stored on the effect under
 * a symbol of ours. The agenda's workers and the loop's inline handlers find
 * it without reading any of Effect's own fields.
 *
 * @internal
 */
export const SyncThunk: unique symbol = Symbol.for("@refpersys/core/Tasklet/sync")

type Marked = { readonly [SyncThunk]?: () => unknown }

/**
 * Builds `Tasklet.sync`: an ordinary `Effect.sync` (so it runs anywhere an
 * Effect runs) carrying its thunk under {@link SyncThunk}.
 *
 * @internal
 */
export const makeSync = <A>(thunk: () => A): Effect.Effect<A> => {
  const effect = Effect.sync(thunk)
  Object.defineProperty(effect, SyncThunk, { value: thunk })
  return effect
}

/** The fields of Effect 4's primitives this module reads (not public API). */
const IDENTIFIER = "~effect/Effect/identifier"
const ARGS = "~effect/Effect/args"

/**
 * Reads the thunk of an `Effect.sync` from the `Sync` primitive's fields as
 * Effect 4 lays them out (its op name under `~effect/Effect/identifier`, the
 * thunk under `~effect/Effect/args`), or `undefined` for any other effect.
 * Only called while {@link introspection} is on, which the start-up probe
 * decides.
 *
 * @internal
 */
export const effect4Thunk = (effect: unknown): (() => unknown) | undefined => {
  const primitive = effect as { readonly [IDENTIFIER]?: unknown; readonly [ARGS]?: unknown }
  return primitive[IDENTIFIER] === "Sync" && typeof primitive[ARGS] === "function"
    ? primitive[ARGS] as () => unknown
    : undefined
}

/**
 * Checks, once, that {@link effect4Thunk} understands the installed Effect:
 * an `Effect.sync` is recognised and its thunk gives the right value, and
 * effects that are not synchronous (`Effect.promise`, `Effect.suspend`, a
 * `flatMap`) are not. Never throws: any surprise means "off". `read` is
 * injectable so tests can check the probe itself.
 *
 * @internal
 */
export const probe = (read: (effect: unknown) => (() => unknown) | undefined = effect4Thunk): boolean => {
  try {
    const value = {}
    const thunk = read(Effect.sync(() => value))
    if (thunk === undefined || thunk() !== value) return false
    const others: ReadonlyArray<unknown> = [
      Effect.promise(() => Promise.resolve(value)),
      Effect.suspend(() => Effect.succeed(value)),
      Effect.flatMap(Effect.sync(() => value), Effect.succeed)
    ]
    return others.every((other) => read(other) === undefined)
  } catch {
    return false
  }
}

/**
 * Whether the start-up probe found Effect's `Sync` primitive laid out as this
 * module expects. When it did not, `Effect.sync` tasklets and handlers are
 * run on the fiber like any other effect (correct, but without the fast
 * path); `Exit` values and `Tasklet.sync` are still taken inline.
 *
 * @internal
 */
export const introspectionProbePassed: boolean = probe()

let introspection = introspectionProbePassed

/**
 * Whether `runSync` reads `Effect.sync`'s fields now.
 *
 * @internal
 */
export const introspectionEnabled = (): boolean => introspection

/**
 * Switches the introspection of `Effect.sync` off (or back on, only if the
 * probe passed), so tests can check that the public path gives the same
 * outcomes. Returns the previous setting.
 *
 * @internal
 */
export const setIntrospection = (enabled: boolean): boolean => {
  const previous = introspection
  introspection = enabled && introspectionProbePassed
  return previous
}

/**
 * Runs a synchronous effect without a fiber step, for the agenda's workers
 * and the loop's inline handlers: an `Exit` (such as `Effect.void`) is its
 * own outcome, a `Tasklet.sync` (and, while the introspection is on, an
 * `Effect.sync`) calls its thunk, a throw becomes a defect as in a fiber.
 * Returns `undefined` for any other effect, which the caller runs on its
 * fiber. Allocation-free apart from the `Exit` of a non-void value.
 *
 * Measured: a trivial tasklet costs a third as much this way, and a loop
 * handler half as much.
 *
 * @internal
 */
export const runSync = (effect: Effect.Effect<unknown, unknown>): Exit.Exit<unknown, unknown> | undefined => {
  // Our marker first: one property load, and the cheapest case to reach;
  // then an Effect.sync (two property loads), then an Exit.
  let thunk = (effect as Marked)[SyncThunk]
  if (thunk === undefined && (!introspection || (thunk = effect4Thunk(effect)) === undefined)) {
    return Exit.isExit(effect) ? effect : undefined
  }
  try {
    const value = thunk()
    return value === undefined ? Exit.void : Exit.succeed(value)
  } catch (error) {
    return Exit.die(error)
  }
}
