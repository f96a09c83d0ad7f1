/**
 * A harness for deterministic agenda tests: record the order in which
 * tasklets start, hold every worker so submissions queue up, and check the
 * accounting invariant.
 *
 * @since 0.1.0
 */
import { Agenda, type AgendaError, type AgendaStats, Tasklet } from "@refpersys/core"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"

/**
 * The agenda's counters do not add up: some tasklet was lost or counted twice.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unbalanced extends Data.TaggedError("Unbalanced")<{
  readonly stats: AgendaStats.AgendaStats
}> {
  override get message(): string {
    const t = this.stats.total
    return `agenda accounting does not add up: submitted ${t.submitted} != completed ${t.completed} + failed ${t.failed} + interrupted ${t.interrupted} + dropped ${t.dropped} + obsolete ${t.obsolete} + queued ${t.queued} + running ${t.running}`
  }
}

/**
 * Workers held by {@link Harness.holdWorkers}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Hold {
  /** Lets the holding tasklets finish, freeing the workers. */
  readonly release: Effect.Effect<void>
}

/**
 * The harness.
 *
 * @since 0.1.0
 * @category models
 */
export interface Harness {
  readonly agenda: Agenda.Agenda
  /** A tasklet body that appends `label` to the start log when it runs. */
  readonly record: (label: string) => Effect.Effect<void>
  /** The labels recorded so far, in start order. */
  readonly log: Effect.Effect<ReadonlyArray<string>>
  /**
   * Occupies every worker with a tasklet that waits for `release`, and
   * returns once all of them are running; submissions made meanwhile queue up,
   * so their start order shows the agenda's picking policy.
   */
  readonly holdWorkers: Effect.Effect<Hold, AgendaError.AgendaClosed | AgendaError.InvalidOptions>
  /** The stats, or an `Unbalanced` failure when the invariant does not hold (per level and in total). */
  readonly balanced: Effect.Effect<AgendaStats.AgendaStats, Unbalanced>
}

/**
 * Builds an agenda with the given options and a harness around it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AgendaHarness } from "@refpersys/testkit"
 *
 * const order = Effect.scoped(Effect.gen(function*() {
 *   const h = yield* AgendaHarness.make({ workers: 1, aging: false })
 *   const hold = yield* h.holdWorkers
 *   yield* h.agenda.submit(h.record("low"), { priority: "Low" })
 *   yield* h.agenda.submit(h.record("high"), { priority: "High" })
 *   yield* hold.release
 *   yield* h.agenda.whenIdle
 *   return yield* h.log // ["high", "low"]
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Agenda.Options = {}
): Effect.Effect<Harness, AgendaError.InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const agenda = yield* Agenda.make(options)
    const started: Array<string> = []
    const workerCount = options.workers ?? 4
    const holdWorkers = Effect.gen(function*() {
      const open = yield* Deferred.make<void>()
      const running = yield* Deferred.make<void>()
      let count = 0
      for (let i = 0; i < workerCount; i++) {
        yield* agenda.submit(
          Effect.andThen(
            Effect.sync(() => {
              if (++count === workerCount) Deferred.doneUnsafe(running, Exit.void)
            }),
            Deferred.await(open)
          ),
          { priority: "High", label: `hold#${i}` }
        )
      }
      yield* Deferred.await(running)
      return { release: Deferred.succeed(open, undefined).pipe(Effect.asVoid) }
    })
    return {
      agenda,
      // Tasklet.sync runs on the worker as it is picked, so the log is the
      // start order whatever the installed Effect's internals look like.
      record: (label) => Tasklet.sync(() => void started.push(label)),
      log: Effect.sync(() => started.slice()),
      holdWorkers,
      balanced: Effect.flatMap(agenda.stats, (stats) => {
        const levels = [stats.byPriority.High, stats.byPriority.Normal, stats.byPriority.Low, stats.total]
        return levels.every((s) => s.balanced) ? Effect.succeed(stats) : Effect.fail(new Unbalanced({ stats }))
      })
    }
  })
