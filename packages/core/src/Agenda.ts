/**
 * The agenda: three priority queues served by workers on a priority scheduler, as
 * the RefPerSys agenda (High / Normal / Low, workers, GC coordination).
 *
 * **Scheduling policy.** Workers take the highest non-empty level. With aging
 * on (the default, `aging: 8`), lower levels are guaranteed progress while
 * higher ones never empty: after `K` picks of higher levels while `Low` is
 * waiting, the next pick is `Low`; after `K` picks of `High` while `Normal` is
 * waiting, the next pick is `Normal`. Bound, in picks: the head of `Low` starts
 * within `K` picks of other levels, the head of `Normal` within `K + 2`
 * (`K` High picks plus at most two forced Low picks). `aging: false` gives
 * strict priority.
 *
 * **Execution.** Workers are plain loops on a `PriorityScheduler`. A
 * synchronous tasklet (`Tasklet.sync`, `Effect.sync`, `Effect.succeed`, ...)
 * is run by the worker as a plain call; any other gets a fiber of its own,
 * started at once under the tasklet's context, and the worker takes the next
 * tasklet when that fiber ends. The context is the submitter's as of
 * submission (services, references such as the log level and annotations,
 * the current span as parent), minus its `Scope`, with the scheduler level of
 * the tasklet's priority: forked fibers inherit it, and nothing a tasklet
 * changes reaches another. With a tracer installed, each tasklet runs in a
 * span named by its label. Interrupting a running tasklet interrupts its
 * fiber; the worker goes on.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Result from "effect/Result"
import * as Scheduler from "effect/Scheduler"
import type * as Scope from "effect/Scope"
import type { AgendaClosed, AgendaFull, GcTimeout } from "./AgendaError.js"
import { InvalidOptions } from "./AgendaError.js"
import type { AgendaStats, ShutdownReport } from "./AgendaStats.js"
import * as internal from "./internal/agenda.js"
import * as OptionSchemas from "./Options.js"
import * as PriorityScheduler from "./PriorityScheduler.js"
import type * as Tasklet from "./Tasklet.js"
import type { WorkerState } from "./WorkerState.js"

/**
 * Options of {@link make} and {@link layer}. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Name used in logs, metrics tags and stats; default `"agenda"`. */
  readonly name?: string
  /** Workers; default 4, at most 1024. */
  readonly workers?: number
  /**
   * Queued tasklets allowed per priority before `submit` waits and
   * `trySubmit` fails with `AgendaFull`; a number for all levels or one per
   * level. Default 65,536 per level.
   */
  readonly capacity?: number | { readonly High?: number; readonly Normal?: number; readonly Low?: number }
  /** Aging bound `K` (see the module doc), or `false` for strict priority; default 8. */
  readonly aging?: number | false
  /** Log failed and defecting tasklets with their label; default `true`. */
  readonly logFailures?: boolean
  /** What closing the scope does: `"quit"` (drain, the default) or `"exit"`. */
  readonly onClose?: "quit" | "exit"
  /**
   * How long a quit on scope close may drain before falling back to exit;
   * default 30 seconds. `"infinity"` waits for ever. Scope close then returns
   * within `closeTimeout + abandonAfter` even if a tasklet never ends.
   */
  readonly closeTimeout?: OptionSchemas.DurationInput
  /**
   * How long an exit (or a quit past its timeout) waits for interrupted
   * tasklets to end, finalizers included, before abandoning them; default 1
   * second, `"infinity"` for ever. An abandoned tasklet (one that ignores
   * interruption, e.g. `Effect.never` inside `Effect.uninterruptible`) is
   * settled as `Interrupted` and counted in `ShutdownReport.abandoned`; its
   * fiber is left to end on its own. A synchronous busy loop blocks the
   * thread itself: nothing in JavaScript can stop it.
   */
  readonly abandonAfter?: OptionSchemas.DurationInput
  /**
   * The priority scheduler workers and tasklets run on: a `PriorityScheduler`
   * or one of its levels. Default: the current scheduler's if it is a level
   * of one (e.g. installed by `PriorityScheduler.layer`), otherwise a new one
   * whose slices are scheduled on the current scheduler (or on a plain
   * `Scheduler` given here).
   */
  readonly scheduler?: Scheduler.Scheduler | PriorityScheduler.PriorityScheduler
  /**
   * Run each tasklet in a span (named by its label, child of the submitter's
   * span) when a tracer is installed in the submitter's context; default
   * `true`. Without an installed tracer no span is made either way.
   */
  readonly traceTasklets?: boolean
  /**
   * How long a garbage-collection barrier may take, from its first request
   * until its collectors ended; default 5 seconds, `"infinity"` for no bound.
   * When it passes the barrier is given up: its requests fail with
   * `GcTimeout`, a collector still running is interrupted (not waited for)
   * and the parked workers resume.
   */
  readonly gcTimeout?: OptionSchemas.DurationInput
}

/**
 * Options of {@link Agenda.quit}.
 *
 * @since 0.1.0
 * @category models
 */
export type QuitOptions = OptionSchemas.QuitOptions

/**
 * The signature of `quit`: with an already decoded timeout (a `Duration`) it
 * cannot fail; with raw options it fails with `InvalidOptions` for a bad
 * timeout (see `Options.decodeQuitOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Quit {
  (options?: { readonly timeout?: Duration.Duration | undefined }): Effect.Effect<ShutdownReport>
  (options?: QuitOptions): Effect.Effect<ShutdownReport, InvalidOptions>
}

/**
 * The agenda service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Agenda {
  readonly name: string
  /**
   * Submits a tasklet. Waits for room when its queue is at capacity
   * (backpressure); fails with `AgendaClosed` once quit or exit began, and
   * with `InvalidOptions` for bad options (e.g. an unknown priority).
   */
  readonly submit: <A, E>(
    effect: Effect.Effect<A, E>,
    options?: Tasklet.Options
  ) => Effect.Effect<Tasklet.TaskletHandle<A, E>, AgendaClosed | InvalidOptions>
  /** Like `submit`, but fails with `AgendaFull` instead of waiting for room. */
  readonly trySubmit: <A, E>(
    effect: Effect.Effect<A, E>,
    options?: Tasklet.Options
  ) => Effect.Effect<Tasklet.TaskletHandle<A, E>, AgendaClosed | AgendaFull | InvalidOptions>
  /**
   * Synchronous `trySubmit` for code outside Effect and hot loops: returns the
   * handle, or the typed error as a value.
   */
  readonly unsafeSubmit: <A, E>(
    effect: Effect.Effect<A, E>,
    options?: Tasklet.Options
  ) => Tasklet.TaskletHandle<A, E> | AgendaClosed | AgendaFull | InvalidOptions
  /** Submits a tasklet and waits for its result. */
  readonly run: <A, E>(
    effect: Effect.Effect<A, E>,
    options?: Tasklet.Options
  ) => Effect.Effect<A, E | AgendaClosed | InvalidOptions | Tasklet.AgendaOutcomeError>
  /** A snapshot of counters, queue depths, time summaries and worker states. */
  readonly stats: Effect.Effect<AgendaStats>
  /** Tasklets queued and running right now, without building a full snapshot. */
  readonly unsafeLoad: () => { readonly queued: number; readonly running: number }
  /** A snapshot of the workers. */
  readonly workers: Effect.Effect<ReadonlyArray<WorkerState>>
  /** Waits until no tasklet is queued or running. */
  readonly whenIdle: Effect.Effect<void>
  /**
   * Garbage-collection barrier: every worker parks at its next safe point
   * (between tasklets, or `safePoint` inside one), then `collector` runs once
   * while no tasklet code runs, then all resume. Requests made while a barrier
   * forms join it; a collector shared by several requests runs once. Succeeds
   * or fails with the collector; fails with `GcTimeout` when the barrier did
   * not end within `gcTimeout`, and with `AgendaClosed` when the agenda
   * stopped first (exit always wins over a barrier). Called by a tasklet of
   * this agenda on its own fiber, that tasklet counts as parked meanwhile.
   */
  readonly requestGc: <E>(collector: Effect.Effect<void, E>) => Effect.Effect<void, E | AgendaClosed | GcTimeout>
  /**
   * Stops accepting, lets queued and running tasklets finish, stops the
   * workers and reports. With a timeout, falls back to exit when it passes.
   * Idempotent: later calls return the same report. Fails with
   * `InvalidOptions` for a bad timeout (negative, NaN, malformed, null).
   *
   * Called from one of this agenda's own tasklets (or a fiber it forked),
   * quit does not wait for that tasklet, which is the one waiting: it
   * returns once every other tasklet ended, with the caller shown as running
   * in the report; the caller then runs to its end and its worker stops.
   */
  readonly quit: Quit
  /**
   * Interrupts running tasklets, drops queued ones, stops the workers and
   * reports. Waits at most `abandonAfter` for interrupted tasklets, then
   * abandons those still running (see `Options.abandonAfter`). Called from
   * one of its own tasklets (or a fiber it forked), exit neither interrupts
   * nor waits for that tasklet, which is the one waiting: it gets the report
   * (the caller shown as running), runs to its end, and its worker stops.
   * Closing the agenda's scope waits for such callers too (bounded by
   * `abandonAfter`, then they are interrupted).
   */
  readonly exit: Effect.Effect<ShutdownReport>
  /** Histograms of wait and run time in ms, per level `[High, Normal, Low]`. */
  readonly metrics: {
    readonly waitTime: ReadonlyArray<Metric.Histogram<number>>
    readonly runTime: ReadonlyArray<Metric.Histogram<number>>
  }
}

/**
 * The service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Agenda: Context.Service<Agenda, Agenda> = Context.Service<Agenda>("@refpersys/core/Agenda")

const DEFAULT_CAPACITY = 65_536
const DEFAULT_CLOSE_TIMEOUT = Duration.seconds(30)
const DEFAULT_GC_TIMEOUT = Duration.seconds(5)
const DEFAULT_ABANDON_AFTER = Duration.seconds(1)

const capacityOf = (c: Options["capacity"], level: "High" | "Normal" | "Low"): number =>
  c === undefined ? DEFAULT_CAPACITY : typeof c === "object" ? c[level] ?? DEFAULT_CAPACITY : c

/** From options validated by `Options.AgendaOptions`, shared with the other agenda constructors. */
const toConfig = (o: typeof OptionSchemas.AgendaOptions.Type, traceTasklets: boolean): internal.AgendaConfig => {
    const closeTimeout = o.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT
    const gcTimeout = o.gcTimeout ?? DEFAULT_GC_TIMEOUT
    const abandonAfter = o.abandonAfter ?? DEFAULT_ABANDON_AFTER
    return {
      name: o.name ?? "agenda",
      workers: o.workers ?? 4,
      capacity: [capacityOf(o.capacity, "High"), capacityOf(o.capacity, "Normal"), capacityOf(o.capacity, "Low")],
      aging: o.aging === false ? 0 : o.aging ?? 8,
      logFailures: o.logFailures ?? true,
      onClose: o.onClose ?? "quit",
      closeTimeout: Duration.isFinite(closeTimeout) ? closeTimeout : undefined,
      gcTimeout: Duration.isFinite(gcTimeout) ? gcTimeout : undefined,
      abandonAfter: Duration.isFinite(abandonAfter) ? abandonAfter : undefined,
      traceTasklets
    }
  }

/** The context of the fiber running now (a synchronous call from a fiber), else the agenda's own. */
const callerContext = (impl: internal.AgendaImpl): Context.Context<never> => Fiber.getCurrent()?.context ?? impl.context

const toService = (impl: internal.AgendaImpl): Agenda => {
  const unsafeSubmit = <A, E>(effect: Effect.Effect<A, E>, options?: Tasklet.Options) => {
    if (impl.lifecycle !== "running") return impl.closedError()
    const run = impl.makeRun(effect, options, callerContext(impl))
    if (!(run instanceof internal.Run)) return run
    if (impl.isFull(run.level)) return impl.fullError(run.level)
    impl.enqueue(run)
    return run
  }
  const submit = <A, E>(effect: Effect.Effect<A, E>, options?: Tasklet.Options) =>
    Effect.withFiber((fiber): Effect.Effect<Tasklet.TaskletHandle<A, E>, AgendaClosed | InvalidOptions> => {
      if (impl.lifecycle !== "running") return Effect.fail(impl.closedError())
      const run = impl.makeRun(effect, options, fiber.context)
      if (!(run instanceof internal.Run)) return Effect.fail(run)
      if (impl.isFull(run.level)) return impl.waitForRoom(run)
      impl.enqueue(run)
      return Effect.succeed(run)
    })
  return {
    name: impl.config.name,
    submit,
    trySubmit: (effect, options) =>
      Effect.suspend(() => {
        // Inside the suspend the current fiber is the caller: unsafeSubmit takes its context.
        const result = unsafeSubmit(effect, options)
        return result instanceof internal.Run ? Effect.succeed(result) : Effect.fail(result)
      }),
    unsafeSubmit,
    run: (effect, options) => Effect.flatMap(submit(effect, options), (handle) => handle.join),
    stats: Effect.sync(() => impl.stats()),
    unsafeLoad: () => ({
      queued: impl.queued[0] + impl.queued[1] + impl.queued[2],
      running: impl.running[0] + impl.running[1] + impl.running[2]
    }),
    workers: Effect.sync(() => impl.workers.map((w) => w.snapshot())),
    whenIdle: impl.awaitIdle,
    requestGc: (collector) => impl.requestGc(collector),
    quit: ((options?: unknown) =>
      Effect.suspend(() => {
        if (options === undefined) return impl.quit(undefined)
        const decoded = OptionSchemas.decodeQuitOptions(options)
        return Result.isSuccess(decoded) ? impl.quit(decoded.success.timeout) : Effect.fail(decoded.failure)
      })) as Quit,
    exit: impl.exit(),
    metrics: impl.metrics()
  }
}

/**
 * Creates an agenda whose workers live as long as the scope. Closing the
 * scope quits (or exits, per `onClose`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const agenda = yield* Agenda.make({ workers: 2 })
 *   const h = yield* agenda.submit(Effect.succeed("done"), { priority: "Low", label: "cleanup" })
 *   return yield* h.join
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Agenda, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const decodedOptions = OptionSchemas.decodeAgendaOptions(options)
    if (Result.isFailure(decodedOptions)) return yield* Effect.fail(decodedOptions.failure)
    const decoded = decodedOptions.success
    const invalid = internal.invalidTraceTasklets(options)
    if (invalid !== undefined) return yield* Effect.fail(invalid)
    const config = toConfig(decoded, options.traceTasklets ?? true)
    const current = yield* Scheduler.Scheduler
    const given = decoded.scheduler as Scheduler.Scheduler | PriorityScheduler.PriorityScheduler | undefined
    const core = (given === undefined ? undefined : PriorityScheduler.coreOf(given)) ??
      PriorityScheduler.coreOf(current) ??
      PriorityScheduler.coreOf(PriorityScheduler.make({ parent: (given as Scheduler.Scheduler | undefined) ?? current }))!
    // Internal fibers (timers, collectors, logs) run at High, as idle workers wake.
    const context = Context.add(yield* Effect.context<never>(), Scheduler.Scheduler, core.levels[0])
    const impl = new internal.AgendaImpl(config, context, core)
    // Bounded however the tasklets behave: closeTimeout (drain), then
    // abandonAfter (interrupted tasklets), then abandonAfter again for
    // tasklets that called quit/exit themselves and were not waited for.
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        config.onClose === "exit" ? impl.exit() : impl.quit(config.closeTimeout),
        impl.awaitAllWorkers()
      )
    )
    impl.startWorkers()
    return toService(impl)
  })

/**
 * A layer providing an {@link Agenda}; see {@link Options}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 *
 * const program = Agenda.run(Effect.succeed(1), { priority: "High" })
 * Effect.runPromise(program.pipe(Effect.provide(Agenda.layer({ workers: 4, aging: 16 }))))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Agenda, InvalidOptions> =>
  Layer.effect(Agenda, make(options))

/**
 * Submits a tasklet to the agenda in context, waiting for room if needed.
 * Services the effect needs are taken from the caller's context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 *
 * const program = Effect.gen(function*() {
 *   const handle = yield* Agenda.submit(Effect.log("hello"), { label: "greeting" })
 *   yield* handle.join
 * })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const submit = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: Tasklet.Options
): Effect.Effect<Tasklet.TaskletHandle<A, E>, AgendaClosed | InvalidOptions, Agenda | R> =>
  // The tasklet runs under the caller's context, which holds what R names.
  Effect.flatMap(Agenda, (agenda) => agenda.submit(effect as Effect.Effect<A, E>, options))

/**
 * Submits a tasklet, failing with `AgendaFull` instead of waiting for room.
 *
 * @since 0.1.0
 * @category accessors
 */
export const trySubmit = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: Tasklet.Options
): Effect.Effect<Tasklet.TaskletHandle<A, E>, AgendaClosed | AgendaFull | InvalidOptions, Agenda | R> =>
  Effect.flatMap(Agenda, (agenda) => agenda.trySubmit(effect as Effect.Effect<A, E>, options))

/**
 * Submits a tasklet and waits for its result.
 *
 * @since 0.1.0
 * @category accessors
 */
export const run = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: Tasklet.Options
): Effect.Effect<A, E | AgendaClosed | InvalidOptions | Tasklet.AgendaOutcomeError, Agenda | R> =>
  Effect.flatMap(submit(effect, options), (handle) => handle.join)

/**
 * A snapshot of the agenda's statistics.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats: Effect.Effect<AgendaStats, never, Agenda> = Effect.flatMap(Agenda, (a) => a.stats)

/**
 * A snapshot of the agenda's workers.
 *
 * @since 0.1.0
 * @category accessors
 */
export const workers: Effect.Effect<ReadonlyArray<WorkerState>, never, Agenda> = Effect.flatMap(
  Agenda,
  (a) => a.workers
)

/**
 * Waits until no tasklet is queued or running.
 *
 * @since 0.1.0
 * @category accessors
 */
export const whenIdle: Effect.Effect<void, never, Agenda> = Effect.flatMap(Agenda, (a) => a.whenIdle)

/**
 * Runs a garbage-collection barrier (see {@link Agenda.requestGc}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 *
 * const collect = Agenda.requestGc(Effect.log("collecting while every worker is parked"))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const requestGc = <E>(
  collector: Effect.Effect<void, E>
): Effect.Effect<void, E | AgendaClosed | GcTimeout, Agenda> =>
  Effect.flatMap(Agenda, (a) => a.requestGc(collector))

/**
 * Quits the agenda in context (see {@link Agenda.quit}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const quit: {
  (options?: { readonly timeout?: Duration.Duration | undefined }): Effect.Effect<ShutdownReport, never, Agenda>
  (options?: QuitOptions): Effect.Effect<ShutdownReport, InvalidOptions, Agenda>
} = ((options?: QuitOptions): Effect.Effect<ShutdownReport, InvalidOptions, Agenda> =>
  Effect.flatMap(Agenda, (a) => a.quit(options))) as any

/**
 * Exits the agenda in context (see {@link Agenda.exit}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const exit: Effect.Effect<ShutdownReport, never, Agenda> = Effect.flatMap(Agenda, (a) => a.exit)

/**
 * A GC safe point for long tasklets: when a garbage-collection barrier is
 * forming, the calling worker parks here until the collector has run. A no-op
 * (a few nanoseconds) otherwise, and outside a worker's own fiber (including
 * fibers a tasklet forks).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda } from "@refpersys/core"
 *
 * const longTasklet = Effect.forEach([1, 2, 3], (chunk) =>
 *   Effect.andThen(Effect.log(`chunk ${chunk}`), Agenda.safePoint))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const safePoint: Effect.Effect<void> = Effect.withFiber((fiber) => {
  const worker = fiber.getRef(internal.CurrentWorker)
  if (worker === undefined || worker.fiber !== fiber || !worker.agenda.gcWanted()) return Effect.void
  return worker.parkInTasklet
})
