/**
 * The queues behind the platforms' streams.
 *
 * Two properties of the streams are part of the contract and are not what a
 * plain `Stream.fromQueue` gives in Effect 4:
 *
 * - one element per pull: a consumer that stops after `Stream.take(n)`
 *   leaves the rest queued for the next consumer instead of losing a whole
 *   batch (`Stream.fromQueue` takes everything queued at once);
 * - closing ends the stream: `Queue.shutdown` alone makes a waiting `take`
 *   fail with an interruption, which would interrupt the consumer instead
 *   of ending its stream.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"

/** A queue a platform fills from its callbacks and closes with its scope. */
export type Source<A> = Queue.Queue<A, Cause.Done>

/** A new unbounded source. */
export const make = <A>(): Effect.Effect<Source<A>> => Queue.unbounded<A, Cause.Done>()

/** Offers from a callback; false once the source is closed. */
export const offer = <A>(source: Source<A>, a: A): boolean => Queue.offerUnsafe(source, a)

/**
 * Ends the source: what is still queued is dropped (as a closed platform's
 * streams give nothing more) and every pull, waiting or later, sees the end.
 */
export const closeUnsafe = <A>(source: Source<A>): void => {
  Queue.endUnsafe(source)
  Queue.shutdownUnsafe(source)
}

/** {@link closeUnsafe} as an effect. */
export const close = <A>(source: Source<A>): Effect.Effect<void> => Effect.sync(() => closeUnsafe(source))

/** The source as a stream, one element per pull, ending when the source is closed. */
export const stream = <A>(source: Source<A>): Stream.Stream<A> => Stream.fromEffectRepeat(Queue.take(source))
