/**
 * A multi-core agenda: thread tasklets (see `ThreadTask`) run on a pool of
 * worker threads, with the priorities, statistics, GC barrier and shutdown
 * of the core `Agenda`.
 *
 * **Scheduling.** The main thread keeps a global queue per priority (with
 * the core agenda's aging). Each worker thread has a small bounded local
 * queue that the main thread fills in batches (one message carries many
 * tasklets), taking the highest level first; a thread reports its results
 * in batches too, early enough to be refilled before it runs dry. A thread
 * always runs its highest-priority local entry next, and reads new batches
 * between tasklets, so a `High` tasklet never waits behind queued lower ones:
 * when every local queue is full, a queued lower-level entry is taken back to
 * the global queue to make room for it. An idle thread takes half of the
 * busiest thread's local queue (work stealing). Steals and take-backs are a
 * compare-and-swap in shared memory, so a thread busy in a long synchronous
 * tasklet need not answer them.
 *
 * **Threads.** On its thread, each tasklet runs as a fiber of its own at its
 * level of the thread's core `PriorityScheduler`, under what its submitter's
 * context carries across: log annotations, log levels and the parent span
 * (as an external span, so spans made on the thread join the submitter's
 * trace). Nothing one tasklet sets in its context reaches the next. A thread that
 * dies (`process.exit`, an uncaught exception, out of memory) is replaced:
 * its running tasklets fail with `ThreadCrashed`, its queued ones go back to
 * the global queue. Nothing is lost: every submitted tasklet ends as
 * completed, failed, interrupted, dropped or obsolete, and `AgendaStats`
 * keeps the core invariant `submitted = completed + failed + interrupted +
 * dropped + obsolete + queued + running` (queued counts the global queue and
 * the local queues).
 *
 * **Commands.** Tasklets reach the main thread's event loop with
 * `ThreadContext.send`: with a `Platform` whose command channel is a pipe
 * (`commands.writeFd`, the native Linux platform) the thread writes the byte
 * itself; otherwise the main thread relays it.
 *
 * @since 0.1.0
 */
import type * as Agenda from "@refpersys/core/Agenda"
import type { AgendaClosed, AgendaFull, GcTimeout } from "@refpersys/core/AgendaError"
import { InvalidOptions } from "@refpersys/core/AgendaError"
import type { AgendaStats, ShutdownReport } from "@refpersys/core/AgendaStats"
import type * as OptionTypes from "@refpersys/core/Options"
import * as OptionSchemas from "@refpersys/core/Options"
import * as Platform from "@refpersys/core/Platform"
import type * as Tasklet from "@refpersys/core/Tasklet"
import type { WorkerState } from "@refpersys/core/WorkerState"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import type { WorkerError } from "effect/workers/WorkerError"
import * as os from "node:os"
import type { ResourceLimits } from "node:worker_threads"
import { decodeThreadAgendaOptions, minimumResourceLimits as minimumLimits } from "./internal/options.js"
import * as internal from "./internal/threadAgenda.js"
import type { TaskCodecError, ThreadTaskError } from "./ThreadAgendaError.js"
import type { ThreadStats } from "./ThreadStats.js"
import type { ThreadTask } from "./ThreadTask.js"

/**
 * Options of {@link make} and {@link layer}. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Name used in logs, thread names and stats; default `"threads"`. */
  readonly name?: string
  /** Worker threads; default `os.availableParallelism()`, at most 256. */
  readonly threads?: number
  /**
   * Tasklets a thread holds in its local queue (queued or running); default
   * 32 (or twice `concurrency` if larger), at least `concurrency`. Larger
   * batches amortize messages for small tasklets; smaller ones spread long
   * tasklets sooner (stealing rebalances either way).
   */
  readonly localQueue?: number
  /**
   * Tasklets a thread runs at once; default 1. More only helps tasklets that
   * wait (timers, I/O): a thread runs one piece of JavaScript at a time.
   */
  readonly concurrency?: number
  /**
   * Tasklets allowed per priority, queued or running, before `submit` waits
   * and `trySubmit` fails with `AgendaFull`; a number for all levels or one
   * per level. Default 65,536 per level.
   */
  readonly capacity?: number | { readonly High?: number; readonly Normal?: number; readonly Low?: number }
  /** Aging bound `K` of the global queue (as in `Agenda`), or `false` for strict priority; default 8. */
  readonly aging?: number | false
  /** Log failed tasklets with their label; default `true`. */
  readonly logFailures?: boolean
  /** What closing the scope does: `"quit"` (drain, the default) or `"exit"`. */
  readonly onClose?: "quit" | "exit"
  /**
   * How long a quit on scope close may drain before falling back to exit;
   * default 30 seconds, `"infinity"` for no bound. The bound holds even when
   * a tasklet is stuck in a synchronous loop: exit terminates its thread.
   */
  readonly closeTimeout?: OptionTypes.DurationInput
  /**
   * How long a GC barrier may take, from the request until its collectors
   * have ended; default 30 seconds, `"infinity"` for no bound. When it
   * passes (a thread never reaches a safe point, or a collector never ends),
   * the barrier is abandoned: parked threads resume, a collector still
   * running is interrupted, and the requests fail with `GcTimeout`.
   */
  readonly gcTimeout?: OptionTypes.DurationInput
  /**
   * V8 heap limits of each worker thread (a thread that exceeds them dies
   * and is replaced: its tasklet fails with `ThreadCrashed`). Each field is
   * unset (Node's default) or at least its {@link minimumResourceLimits}
   * value; smaller limits fail `make` with `InvalidOptions` naming the field
   * and its minimum.
   */
  readonly resourceLimits?: ResourceLimits
  /**
   * Whether a thread parked for a GC barrier collects its own heap:
   * `"exposed"` (default) when `gc` is exposed (`node --expose-gc`), `"force"`
   * also without it (each thread obtains `gc` by switching V8's
   * `--expose-gc` flag on and off around creating a context), `"off"` never.
   */
  readonly heapCollection?: "exposed" | "force" | "off"
}

/**
 * Options of {@link ThreadAgenda.quit}.
 *
 * @since 0.1.0
 * @category models
 */
export type QuitOptions = OptionTypes.QuitOptions

/**
 * A thread tasklet's handle: the core `TaskletHandle`, whose error also
 * covers the thread errors (`TaskCodecError`, `TaskLoadError`,
 * `ThreadCrashed`).
 *
 * @since 0.1.0
 * @category models
 */
export type Handle<A, E> = Tasklet.TaskletHandle<A, E | ThreadTaskError>

/**
 * The service.
 *
 * @since 0.1.0
 * @category models
 */
export interface ThreadAgenda {
  readonly name: string
  /** Worker threads in the pool. */
  readonly threads: number
  /**
   * Submits a tasklet: `args` are encoded with the task's Schema now (a
   * value that does not encode fails with `TaskCodecError`, nothing is
   * submitted). Encoded arguments that cannot be structured-cloned (a
   * function or a Symbol let through by `Schema.Any`) are found when the
   * tasklet is dispatched: its handle fails with `TaskCodecError` (stage
   * `encodeArgs`, with the value's `path`) and it never starts. Waits for
   * room at capacity; fails with `AgendaClosed` once quit or exit began,
   * `InvalidOptions` for bad options.
   *
   * The tasklet carries the submitting fiber's log annotations (those that
   * can be structured-cloned), minimum and current log levels, and its span
   * as the parent span of the tasklet's context on the thread (an external
   * span: trace id and span id cross as data).
   */
  readonly submit: <Args, A, E>(
    task: ThreadTask<Args, A, E>,
    args: Args,
    options?: Tasklet.Options
  ) => Effect.Effect<Handle<A, E>, AgendaClosed | InvalidOptions | TaskCodecError>
  /** Like `submit`, but fails with `AgendaFull` instead of waiting for room. */
  readonly trySubmit: <Args, A, E>(
    task: ThreadTask<Args, A, E>,
    args: Args,
    options?: Tasklet.Options
  ) => Effect.Effect<Handle<A, E>, AgendaClosed | AgendaFull | InvalidOptions | TaskCodecError>
  /**
   * Synchronous `trySubmit`: returns the handle, or the typed error as a
   * value. Called from inside a fiber, the tasklet carries that fiber's
   * context as with `submit`; from plain JavaScript, nothing.
   */
  readonly unsafeSubmit: <Args, A, E>(
    task: ThreadTask<Args, A, E>,
    args: Args,
    options?: Tasklet.Options
  ) => Handle<A, E> | AgendaClosed | AgendaFull | InvalidOptions | TaskCodecError
  /** Submits a tasklet and waits for its result. */
  readonly run: <Args, A, E>(
    task: ThreadTask<Args, A, E>,
    args: Args,
    options?: Tasklet.Options
  ) => Effect.Effect<
    A,
    E | ThreadTaskError | AgendaClosed | InvalidOptions | Tasklet.AgendaOutcomeError
  >
  /** A snapshot of counters, queue depths, time summaries and one `WorkerState` per thread. */
  readonly stats: Effect.Effect<AgendaStats>
  /** Batching, stealing, displacement and crash counters, per thread and in total. */
  readonly threadStats: Effect.Effect<ThreadStats>
  /** A snapshot of the threads. */
  readonly workers: Effect.Effect<ReadonlyArray<WorkerState>>
  /** Waits until no tasklet is queued or running. */
  readonly whenIdle: Effect.Effect<void>
  /**
   * GC barrier across threads: every thread parks at its next safe point
   * (between tasklets, or `ThreadContext.safePoint` inside one) and, per
   * {@link Options.heapCollection}, collects its own heap; then `collector`
   * runs once on the main thread while no tasklet code runs on any thread;
   * then all resume. Requests made while a barrier forms join it.
   *
   * Bounded by {@link Options.gcTimeout}: when a thread never reaches a safe
   * point, or a collector never ends, the request fails with `GcTimeout`
   * (listing the tasklets that did not park) and the threads resume. Exit
   * always wins: pending requests fail with `AgendaClosed` and a running
   * collector is interrupted. A request made from inside a collector of
   * this agenda runs its collector at once (the threads are parked).
   */
  readonly requestGc: <E>(collector: Effect.Effect<void, E>) => Effect.Effect<void, E | AgendaClosed | GcTimeout>
  /**
   * Stops accepting, lets queued and running tasklets finish, closes the
   * threads and reports. With a timeout, falls back to exit when it passes
   * (even with a tasklet stuck in a synchronous loop: its thread is
   * terminated). The process stays alive until the report is out. A bad
   * timeout fails with `InvalidOptions` (as in `Agenda.quit`).
   */
  readonly quit: Agenda.Quit
  /**
   * Drops queued tasklets, terminates the threads (running tasklets end
   * `Interrupted`; their finalizers do not run) and reports.
   */
  readonly exit: Effect.Effect<ShutdownReport>
}

/**
 * The service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const ThreadAgenda: Context.Service<ThreadAgenda, ThreadAgenda> = Context.Service<ThreadAgenda>(
  "@refpersys/threads/ThreadAgenda"
)

/**
 * The smallest `resourceLimits` a thread starts with, in MB (old generation
 * 32, young generation 4, stack 1): a started thread uses about 15 MB of old
 * generation, and newer Node versions abort the whole process when a
 * thread's young generation is too small to start it.
 *
 * @example
 * ```ts
 * import { ThreadAgenda } from "@refpersys/threads"
 *
 * const agenda = ThreadAgenda.make({
 *   resourceLimits: { maxOldGenerationSizeMb: ThreadAgenda.minimumResourceLimits.maxOldGenerationSizeMb }
 * })
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const minimumResourceLimits: {
  readonly maxOldGenerationSizeMb: number
  readonly maxYoungGenerationSizeMb: number
  readonly codeRangeSizeMb: number
  readonly stackSizeMb: number
} = minimumLimits

const DEFAULT_CAPACITY = 65_536

const DEFAULT_CLOSE_TIMEOUT = Duration.seconds(30)
const DEFAULT_GC_TIMEOUT = Duration.seconds(30)

const capacityOf = (c: Options["capacity"], level: "High" | "Normal" | "Low"): number =>
  c === undefined ? DEFAULT_CAPACITY : typeof c === "object" ? c[level] ?? DEFAULT_CAPACITY : c

const finite = (d: Duration.Duration): Duration.Duration | undefined => Duration.isFinite(d) ? d : undefined

/** Decodes the options through their one Schema, then applies defaults and the checks across fields. */
const resolveConfig = (options: Options): Effect.Effect<internal.Config, InvalidOptions> =>
  Effect.gen(function*() {
    const decoded = decodeThreadAgendaOptions(options)
    if (Result.isFailure(decoded)) return yield* Effect.fail(decoded.failure)
    const o = decoded.success
    const concurrency = o.concurrency ?? 1
    const localQueue = o.localQueue ?? Math.max(32, 2 * concurrency)
    if (localQueue < concurrency) {
      return yield* new InvalidOptions({
        option: "localQueue",
        value: localQueue,
        expected: `at least concurrency (${concurrency}): the local queue holds the running tasklets too`
      })
    }
    return {
      name: o.name ?? "threads",
      threads: o.threads ?? Math.min(256, os.availableParallelism()),
      localQueue,
      concurrency,
      capacity: [capacityOf(o.capacity, "High"), capacityOf(o.capacity, "Normal"), capacityOf(o.capacity, "Low")],
      aging: o.aging === false ? 0 : o.aging ?? 8,
      logFailures: o.logFailures ?? true,
      onClose: o.onClose ?? "quit",
      closeTimeout: finite(o.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT),
      gcTimeout: finite(o.gcTimeout ?? DEFAULT_GC_TIMEOUT),
      resourceLimits: o.resourceLimits,
      heapCollection: o.heapCollection ?? "exposed"
    }
  })

const toService = (impl: internal.ThreadAgendaImpl): ThreadAgenda => {
  const unsafeSubmit = <Args, A, E>(task: ThreadTask<Args, A, E>, args: Args, options?: Tasklet.Options) => {
    if (impl.lifecycle !== "running") return impl.closedError()
    // Called from a fiber, the tasklet carries that fiber's context; from plain JavaScript, none.
    const run = impl.makeRun(task, args, options, Fiber.getCurrent()?.context)
    if (!(run instanceof internal.ThreadRun)) return run
    if (impl.isFull(run.level)) return impl.fullError(run.level)
    impl.enqueue(run)
    return run
  }
  const submit = <Args, A, E>(task: ThreadTask<Args, A, E>, args: Args, options?: Tasklet.Options) =>
    Effect.withFiber((fiber): Effect.Effect<Handle<A, E>, AgendaClosed | InvalidOptions | TaskCodecError> => {
      if (impl.lifecycle !== "running") return Effect.fail(impl.closedError())
      const run = impl.makeRun(task, args, options, fiber.context)
      if (!(run instanceof internal.ThreadRun)) return Effect.fail(run)
      if (impl.isFull(run.level)) return impl.waitForRoom(run)
      impl.enqueue(run)
      return Effect.succeed(run)
    })
  return {
    name: impl.config.name,
    threads: impl.config.threads,
    submit,
    trySubmit: (task, args, options) =>
      Effect.suspend(() => {
        const result = unsafeSubmit(task, args, options)
        return result instanceof internal.ThreadRun ? Effect.succeed(result) : Effect.fail(result)
      }),
    unsafeSubmit,
    run: (task, args, options) => Effect.flatMap(submit(task, args, options), (handle) => handle.join),
    stats: Effect.sync(() => impl.stats()),
    threadStats: Effect.sync(() => impl.threadStats()),
    workers: Effect.sync(() => impl.workerStates()),
    whenIdle: impl.awaitIdle,
    requestGc: (collector) => impl.requestGc(collector),
    quit: ((options?: unknown) =>
      Effect.suspend(() => {
        if (options === undefined) return impl.quit(undefined)
        const decoded = OptionSchemas.decodeQuitOptions(options)
        return Result.isSuccess(decoded) ? impl.quit(decoded.success.timeout) : Effect.fail(decoded.failure)
      })) as Agenda.Quit,
    exit: impl.exit()
  }
}

/**
 * Starts a thread agenda for the scope and waits until every thread has
 * started. Closing the scope quits (or exits, per `onClose`). When a
 * `Platform` is in context, tasklets can send it command bytes (see
 * `ThreadContext.send`); build the agenda inside the platform's scope so it
 * closes first. Fails with `WorkerError` when a thread cannot start.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ThreadAgenda } from "@refpersys/threads"
 * import { fib } from "./tasks.js"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const agenda = yield* ThreadAgenda.make({ threads: 2 })
 *   const handle = yield* agenda.submit(fib, 30, { priority: "High" })
 *   return yield* handle.join
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<ThreadAgenda, InvalidOptions | WorkerError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* resolveConfig(options)
    const platform = yield* Effect.serviceOption(Platform.Platform)
    const context = yield* Effect.context<never>()
    const impl = new internal.ThreadAgendaImpl(config, context, Option.getOrUndefined(platform))
    yield* Effect.addFinalizer(() => config.onClose === "exit" ? impl.exit() : impl.quit(config.closeTimeout))
    yield* impl.start()
    return toService(impl)
  })

/**
 * A layer providing a {@link ThreadAgenda}; see {@link Options}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ThreadAgenda } from "@refpersys/threads"
 * import { fib } from "./tasks.js"
 *
 * const program = ThreadAgenda.run(fib, 25).pipe(Effect.provide(ThreadAgenda.layer({ threads: 2 })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<ThreadAgenda, InvalidOptions | WorkerError> =>
  Layer.effect(ThreadAgenda, make(options))

/**
 * Submits a tasklet to the agenda in context, waiting for room if needed.
 *
 * @since 0.1.0
 * @category accessors
 */
export const submit = <Args, A, E>(
  task: ThreadTask<Args, A, E>,
  args: Args,
  options?: Tasklet.Options
): Effect.Effect<Handle<A, E>, AgendaClosed | InvalidOptions | TaskCodecError, ThreadAgenda> =>
  Effect.flatMap(ThreadAgenda, (agenda) => agenda.submit(task, args, options))

/**
 * Submits a tasklet and waits for its result.
 *
 * @since 0.1.0
 * @category accessors
 */
export const run = <Args, A, E>(
  task: ThreadTask<Args, A, E>,
  args: Args,
  options?: Tasklet.Options
): Effect.Effect<
  A,
  E | ThreadTaskError | AgendaClosed | InvalidOptions | Tasklet.AgendaOutcomeError,
  ThreadAgenda
> => Effect.flatMap(ThreadAgenda, (agenda) => agenda.run(task, args, options))

/**
 * A snapshot of the statistics of the agenda in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats: Effect.Effect<AgendaStats, never, ThreadAgenda> = Effect.flatMap(ThreadAgenda, (a) => a.stats)

/**
 * The thread counters of the agenda in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const threadStats: Effect.Effect<ThreadStats, never, ThreadAgenda> = Effect.flatMap(
  ThreadAgenda,
  (a) => a.threadStats
)

/**
 * Waits until the agenda in context has nothing queued or running.
 *
 * @since 0.1.0
 * @category accessors
 */
export const whenIdle: Effect.Effect<void, never, ThreadAgenda> = Effect.flatMap(ThreadAgenda, (a) => a.whenIdle)

/**
 * Runs a GC barrier across the threads of the agenda in context (see
 * {@link ThreadAgenda.requestGc}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const requestGc = <E>(
  collector: Effect.Effect<void, E>
): Effect.Effect<void, E | AgendaClosed | GcTimeout, ThreadAgenda> =>
  Effect.flatMap(ThreadAgenda, (a) => a.requestGc(collector))

/**
 * Quits the agenda in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const quit: {
  (options?: { readonly timeout?: Duration.Duration | undefined }): Effect.Effect<ShutdownReport, never, ThreadAgenda>
  (options?: QuitOptions): Effect.Effect<ShutdownReport, InvalidOptions, ThreadAgenda>
} = ((options?: QuitOptions): Effect.Effect<ShutdownReport, InvalidOptions, ThreadAgenda> =>
  Effect.flatMap(ThreadAgenda, (a) => a.quit(options))) as any

/**
 * Exits the agenda in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const exit: Effect.Effect<ShutdownReport, never, ThreadAgenda> = Effect.flatMap(ThreadAgenda, (a) => a.exit)
