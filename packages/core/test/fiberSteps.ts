import { Effect, Tracer } from "effect"

/** The method Effect's run loop evaluates a primitive with (see `Tracer.EffectPrimitive`). */
const evaluate = "~effect/Effect/evaluate"

/**
 * Runs `body` (and the fibers it starts, such as an agenda's tasklet fibers,
 * which inherit the submitter's context) under a tracer whose `context` hook
 * sees every primitive a fiber evaluates; `stepped(effect)` tells whether a
 * fiber stepped over `effect`. A tasklet run inline by its worker is never
 * stepped over. Independent of machine speed.
 */
export const withFiberSteps = <A, E, R>(
  body: (stepped: (effect: unknown) => boolean) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const effects = new Set<unknown>()
    const tracer = Tracer.make({
      span: (options) => Tracer.nativeTracer.span(options),
      context: (primitive, fiber) => {
        effects.add(primitive)
        return primitive[evaluate](fiber)
      }
    })
    return body((effect) => effects.has(effect)).pipe(Effect.provideService(Tracer.Tracer, tracer))
  })
