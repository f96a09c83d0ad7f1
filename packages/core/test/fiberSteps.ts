import { Effect, RuntimeFlags, RuntimeFlagsPatch, Supervisor } from "effect"

/**
 * Records every effect a fiber steps over (Effect's op supervision), so a
 * test can tell a tasklet run inline, which no fiber ever steps over, from one
 * run on the worker's fiber. Independent of machine speed.
 */
class SteppedOver extends Supervisor.AbstractSupervisor<void> {
  readonly effects = new Set<unknown>()
  value = Effect.void
  override onEffect(_fiber: unknown, effect: unknown): void {
    this.effects.add(effect)
  }
}

/**
 * Runs `body` (and the fibers it forks, such as an agenda's workers) under
 * op supervision; `stepped(effect)` tells whether a fiber stepped over it.
 */
export const withFiberSteps = <A, E, R>(
  body: (stepped: (effect: unknown) => boolean) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const supervisor = new SteppedOver()
    return body((effect) => supervisor.effects.has(effect)).pipe(
      Effect.supervised(supervisor),
      Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision))
    )
  })
