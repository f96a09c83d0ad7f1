/**
 * A saturating load: submitter fibers that keep the agenda's queues full
 * (waiting for room, as `submit` does under backpressure) with a mix of
 * tasklets, and count the outcome of every tasklet they got accepted.
 *
 * @internal
 */
import type { Agenda, Priority, Tasklet } from "@refpersys/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import type { Prng } from "./prng.js"

export type Kind = "spin" | "yield" | "sleep" | "fail" | "die"

export interface Load {
  /** Tasklets the agenda accepted. */
  readonly accepted: () => number
  /** Accepted tasklets that ended, by outcome (each observed exactly once). */
  readonly ended: Readonly<Record<Tasklet.Outcome, number>>
  readonly endedTotal: () => number
  /** Accepted tasklets meant to fail or die. */
  readonly meantToFail: () => number
  /** Submissions refused because the agenda closed (never accepted, so not lost). */
  readonly refused: () => number
  /** Stops submitting and waits until every submitter has returned. */
  readonly stop: Effect.Effect<void>
  /** Waits until every submitter has returned by itself (the agenda closed). */
  readonly done: Effect.Effect<void>
}

const priorities: ReadonlyArray<Priority.Priority> = ["High", "Normal", "Low"]

/** A busy loop of about `micros` microseconds: CPU-bound tasklet code. */
const spin = (micros: number) =>
  Effect.sync(() => {
    const end = performance.now() + micros / 1000
    let x = 0
    while (performance.now() < end) x++
    return x
  })

const body = (kind: Kind, prng: Prng): Effect.Effect<unknown, string> => {
  switch (kind) {
    case "spin":
      return spin(prng.int(5, 60))
    case "yield":
      return Effect.repeat(Effect.yieldNow, { times: prng.int(1, 4) })
    case "sleep":
      return Effect.sleep(prng.int(0, 2))
    case "fail":
      return Effect.fail("planned failure")
    case "die":
      return Effect.die(new Error("planned defect"))
  }
}

export const start = (
  agenda: Agenda.Agenda,
  options: {
    readonly prng: Prng
    readonly submitters: number
    readonly kinds: ReadonlyArray<Kind>
    /** Stop after this many accepted tasklets in all (default: until stopped or closed). */
    readonly limit?: number
  }
): Effect.Effect<Load, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { prng } = options
    let accepted = 0
    let endedTotal = 0
    let meantToFail = 0
    let refused = 0
    let stopped = false
    const ended: Record<Tasklet.Outcome, number> = { Completed: 0, Failed: 0, Interrupted: 0, Dropped: 0, Obsolete: 0 }
    const limit = options.limit ?? Infinity
    const observe = (handle: Tasklet.TaskletHandle<unknown, unknown>) => {
      handle.unsafeAddObserver(() => {
        ended[handle.outcome!]++
        endedTotal++
      })
    }
    const submitter = Effect.suspend(function loop(): Effect.Effect<void> {
      if (stopped || accepted >= limit) return Effect.void
      const kind = prng.pick(options.kinds)
      const priority = prng.pick(priorities)
      return Effect.matchEffect(agenda.submit(body(kind, prng), { priority, label: kind }), {
        onFailure: () => {
          refused++
          return Effect.void
        },
        onSuccess: (handle) => {
          accepted++
          if (kind === "fail" || kind === "die") meantToFail++
          observe(handle)
          // Submitting is synchronous while there is room: yield now and then so the loop and the workers run.
          return accepted % 64 === 0 ? Effect.andThen(Effect.yieldNow, loop()) : loop()
        }
      })
    })
    const fibers = yield* Effect.forEach(
      Array.from({ length: options.submitters }),
      () => Effect.forkScoped(submitter)
    )
    const done = Effect.asVoid(Fiber.joinAll(fibers))
    return {
      accepted: () => accepted,
      ended,
      endedTotal: () => endedTotal,
      meantToFail: () => meantToFail,
      refused: () => refused,
      stop: Effect.andThen(Effect.sync(() => {
        stopped = true
      }), done),
      done
    }
  })
