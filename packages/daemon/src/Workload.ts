/**
 * The daemon's synthetic workload: tasklets at the three priorities, at a
 * steady rate and in a configurable mix, each a short burst of CPU work.
 *
 * A periodic timeout of the event loop calls {@link Workload.tick}; the
 * {@link Planner} turns the time since the last tick into how many tasklets
 * of each priority are due, carrying fractions over so that the long-run
 * rate is exact. Tasklets stay short (tens of microseconds) so that the
 * event loop, which shares the thread, is never starved.
 *
 * @since 0.1.0
 */
import { type Agenda, AgendaError } from "@refpersys/core"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

/**
 * Relative weights of High, Normal and Low tasklets.
 *
 * @since 0.1.0
 * @category schemas
 */
const Weight = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))

export const Mix = Schema.Struct({
  High: Weight,
  Normal: Weight,
  Low: Weight
})

/**
 * @since 0.1.0
 * @category models
 */
export type Mix = typeof Mix.Type

/**
 * The default mix, `1:3:6`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMix: Mix = { High: 1, Normal: 3, Low: 6 }

/**
 * Parses `"H:N:L"`, e.g. `"1:3:6"`: three non-negative numbers, not all zero.
 *
 * @example
 * ```ts
 * import { Workload } from "@refpersys/daemon"
 *
 * Workload.parseMix("1:3:6") // Result.succeed({ High: 1, Normal: 3, Low: 6 })
 * Workload.parseMix("1:3")   // Result.fail("...")
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseMix = (text: string): Result.Result<Mix, string> => {
  const parts = text.split(":").map((part) => part.trim())
  const numbers = parts.map(Number)
  if (parts.length !== 3 || parts.some((part) => part === "") || numbers.some((n) => !Number.isFinite(n) || n < 0)) {
    return Result.fail(`--mix takes three non-negative weights High:Normal:Low such as 1:3:6, got "${text}"`)
  }
  if (numbers[0] + numbers[1] + numbers[2] === 0) {
    return Result.fail(`--mix needs at least one positive weight, got "${text}"`)
  }
  return Result.succeed({ High: numbers[0], Normal: numbers[1], Low: numbers[2] })
}

/**
 * The priorities, highest first.
 *
 * @since 0.1.0
 * @category constants
 */
export const priorities = ["High", "Normal", "Low"] as const

/**
 * Counts per priority.
 *
 * @since 0.1.0
 * @category models
 */
export interface PerPriority {
  readonly High: number
  readonly Normal: number
  readonly Low: number
}

/**
 * Turns elapsed time into tasklets due per priority at `rate` tasklets per
 * second split by `mix`. Fractions carry over between calls, so over any
 * stretch of calls the counts are within one of `rate × time × share`.
 *
 * @example
 * ```ts
 * import { Workload } from "@refpersys/daemon"
 *
 * const planner = new Workload.Planner(1000, { High: 1, Normal: 1, Low: 2 })
 * planner.due(10) // { High: 2, Normal: 2, Low: 5 }
 * ```
 *
 * @since 0.1.0
 * @category planning
 */
export class Planner {
  private readonly perMs: PerPriority
  private carry = { High: 0, Normal: 0, Low: 0 }

  constructor(readonly rate: number, readonly mix: Mix) {
    const total = mix.High + mix.Normal + mix.Low
    const share = (weight: number) => total === 0 ? 0 : (rate * weight) / total / 1000
    this.perMs = { High: share(mix.High), Normal: share(mix.Normal), Low: share(mix.Low) }
  }

  due(elapsedMs: number): PerPriority {
    const ms = Number.isFinite(elapsedMs) && elapsedMs > 0 ? elapsedMs : 0
    const take = (p: keyof PerPriority) => {
      const exact = this.carry[p] + this.perMs[p] * ms
      const whole = Math.floor(exact)
      this.carry[p] = exact - whole
      return whole
    }
    return { High: take("High"), Normal: take("Normal"), Low: take("Low") }
  }
}

/**
 * Counters of the workload.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkloadStats = Schema.Struct({
  /** Tasklets per second asked for. */
  rate: Schema.Number,
  mix: Mix,
  /** Tasklets submitted, per priority. */
  submitted: Schema.Struct({ High: Schema.Number, Normal: Schema.Number, Low: Schema.Number }),
  /** Submissions refused because their queue was full (never submitted, not in the agenda's counts). */
  refused: Schema.Number,
  ticks: Schema.Number,
  /** Whether the workload stopped because the agenda is quitting. */
  stopped: Schema.Boolean
})

/**
 * @since 0.1.0
 * @category models
 */
export type WorkloadStats = typeof WorkloadStats.Type

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly rate: number
  readonly mix: Mix
  /** Busy time of one tasklet per priority, in microseconds (default 20/50/100). */
  readonly workMicros?: PerPriority
  /** Low tasklets not started within this many ms become obsolete (default 2,000). */
  readonly lowObsoleteAfterMs?: number
  /** Longest time one tick makes up for (default 100 ms), so a stall never causes a burst. */
  readonly maxCatchUpMs?: number
  /** The clock of the ticks, in ms (default `performance.now`). */
  readonly now?: () => number
}

/**
 * A running workload.
 *
 * @since 0.1.0
 * @category models
 */
export interface Workload {
  /** Submits the tasklets due since the previous tick. */
  readonly tick: Effect.Effect<void>
  readonly stats: () => WorkloadStats
}

const spin = (micros: number): Effect.Effect<void> =>
  Effect.sync(() => {
    const end = performance.now() + micros / 1000
    while (performance.now() < end) {
      // busy: a stand-in for real work
    }
  })

const labels: Record<keyof PerPriority, string> = {
  High: "synthetic: answer a request",
  Normal: "synthetic: index a page",
  Low: "synthetic: compact storage"
}

/**
 * A workload submitting to `agenda`. Submissions that find their queue full
 * are counted as refused; once the agenda refuses because it is quitting,
 * the workload stops for good.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 * import { Workload } from "@refpersys/daemon"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const agenda = yield* Agenda.make({ workers: 4 })
 *   const workload = Workload.make(agenda, { rate: 1000, mix: Workload.defaultMix })
 *   yield* Effect.repeat(Effect.andThen(Effect.sleep("10 millis"), workload.tick), { times: 100 })
 *   console.log(workload.stats().submitted)
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (agenda: Agenda.Agenda, options: Options): Workload => {
  const planner = new Planner(options.rate, options.mix)
  const work = options.workMicros ?? { High: 20, Normal: 50, Low: 100 }
  const maxCatchUp = options.maxCatchUpMs ?? 100
  const clock = options.now ?? (() => performance.now())
  const tasklets = {
    High: spin(work.High),
    Normal: spin(work.Normal),
    Low: spin(work.Low)
  }
  const submitOptions = {
    High: { priority: "High", label: labels.High },
    Normal: { priority: "Normal", label: labels.Normal },
    Low: { priority: "Low", label: labels.Low, obsoleteAfter: options.lowObsoleteAfterMs ?? 2000 }
  } as const
  const submitted = { High: 0, Normal: 0, Low: 0 }
  let refused = 0
  let ticks = 0
  let stopped = false
  // Time runs from creation, so the first tick already submits its share.
  let last = clock()

  const tick = Effect.sync(() => {
    if (stopped) return
    const now = clock()
    const elapsed = Math.min(now - last, maxCatchUp)
    last = now
    ticks++
    const due = planner.due(elapsed)
    for (const priority of priorities) {
      for (let i = 0; i < due[priority]; i++) {
        const result = agenda.unsafeSubmit(tasklets[priority], submitOptions[priority])
        if (result instanceof AgendaError.AgendaFull) {
          // The level stays full for the rest of this tick: count the rest
          // as refused instead of building an error for each (under heavy
          // overload that alone would starve the loop).
          refused += due[priority] - i
          break
        }
        if (result instanceof AgendaError.AgendaClosed || result instanceof AgendaError.InvalidOptions) {
          stopped = true
          return
        }
        submitted[priority]++
      }
    }
  })

  return {
    tick,
    stats: () => ({
      rate: options.rate,
      mix: options.mix,
      submitted: { ...submitted },
      refused,
      ticks,
      stopped
    })
  }
}
