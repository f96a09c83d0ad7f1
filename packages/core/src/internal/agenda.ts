import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as References from "effect/References"
import * as Result from "effect/Result"
import * as Scheduler from "effect/Scheduler"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { AgendaClosed, AgendaFull, GcTimeout, InvalidOptions } from "../AgendaError.js"
import { AgendaStats, PriorityStats, ShutdownReport } from "../AgendaStats.js"
import * as Options from "../Options.js"
import * as Priority from "../Priority.js"
import type * as Tasklet from "../Tasklet.js"
import { TaskletDropped, TaskletObsolete } from "../Tasklet.js"
import { WorkerState } from "../WorkerState.js"
import type { PrioritySchedulerImpl } from "./priorityScheduler.js"
import { RingQueue } from "./ringQueue.js"
import { Summary } from "./summary.js"
import { runSync } from "./syncEffect.js"

type Level = 0 | 1 | 2

/**
 * Run states. The first two are live; the rest are the outcomes, in the order
 * of `OUTCOMES`, so `state - DONE_BASE` indexes the outcome counters.
 */
const QUEUED = 0
const RUNNING = 1
const COMPLETED = 2
const FAILED = 3
const INTERRUPTED = 4
const DROPPED = 5
const OBSOLETE = 6
const DONE_BASE = COMPLETED

const OUTCOMES: ReadonlyArray<Tasklet.Outcome> = ["Completed", "Failed", "Interrupted", "Dropped", "Obsolete"]

/** @internal */
export interface AgendaConfig {
  readonly name: string
  readonly workers: number
  readonly capacity: readonly [number, number, number]
  /** Higher-level picks after which one lower level is served; 0 = strict priority. */
  readonly aging: number
  readonly logFailures: boolean
  readonly onClose: "quit" | "exit"
  readonly closeTimeout: Duration.Duration | undefined
  /** Bound of a GC barrier, from its first request to the collector's end; undefined = none. */
  readonly gcTimeout: Duration.Duration | undefined
  /** How long a stop waits for interrupted tasklets before abandoning them; undefined = for ever. */
  readonly abandonAfter: Duration.Duration | undefined
  /** Run each tasklet in a span when a tracer is installed in its context. */
  readonly traceTasklets: boolean
}

type AnyRun = Run<any, any>

type Observer<A, E> = (exit: Exit.Exit<A, E | Tasklet.AgendaOutcomeError>) => void

/**
 * A submitted tasklet. It is both the queue entry and the user's handle, so a
 * queued tasklet costs one object (see the memory note in docs/).
 *
 * @internal
 */
export class Run<A, E> implements Tasklet.TaskletHandle<A, E> {
  state: number = QUEUED
  startedAt: number | undefined = undefined
  /**
   * Before the outcome: the observers waiting for it (or none); after: the
   * outcome's Exit. One field for both keeps a queued tasklet small.
   */
  private slot: Exit.Exit<A, E | Tasklet.AgendaOutcomeError> | Array<Observer<A, E>> | undefined = undefined

  constructor(
    readonly agenda: AgendaImpl,
    readonly id: number,
    readonly level: Level,
    readonly explicitLabel: string | undefined,
    public effect: Effect.Effect<A, E> | undefined,
    /** The submitter's context: the tasklet runs under it (see `AgendaImpl.contextFor`). */
    readonly context: Context.Context<never>,
    readonly createdAt: number,
    readonly obsoleteAt: number | undefined
  ) {}

  get label(): string {
    return this.explicitLabel ?? `tasklet#${this.id}`
  }
  /**
   * The outcome, once settled. A drop or an obsolescence is settled without
   * one, and its error is built here on first use: an exit dropping a million
   * queued tasklets would otherwise build a million errors with stack traces
   * (seconds, and hundreds of MB) that nobody reads.
   */
  get exit(): Exit.Exit<A, E | Tasklet.AgendaOutcomeError> | undefined {
    if (this.state < DONE_BASE) return undefined
    if (this.slot === undefined) {
      if (this.state === DROPPED) this.slot = Exit.fail(new TaskletDropped({ id: this.id, label: this.label }))
      else if (this.state === OBSOLETE) {
        this.slot = Exit.fail(new TaskletObsolete({ id: this.id, label: this.label, deadline: this.obsoleteAt! }))
      }
    }
    return this.slot as Exit.Exit<A, E | Tasklet.AgendaOutcomeError>
  }

  /** Records the outcome (undefined: built on first use) and returns the observers to tell. */
  settleSlot(
    state: number,
    exit: Exit.Exit<A, E | Tasklet.AgendaOutcomeError> | undefined
  ): Array<Observer<A, E>> | undefined {
    const observers = this.slot as Array<Observer<A, E>> | undefined
    this.state = state
    this.slot = exit
    return observers
  }
  get priority(): Priority.Priority {
    return Priority.fromIndex(this.level)
  }
  get status(): Tasklet.Status {
    return this.state === QUEUED ? "Queued" : this.state === RUNNING ? "Running" : "Done"
  }
  get outcome(): Tasklet.Outcome | undefined {
    return this.state >= DONE_BASE ? OUTCOMES[this.state - DONE_BASE] : undefined
  }
  get attempts(): number {
    return this.startedAt === undefined ? 0 : 1
  }

  info(): Tasklet.Info {
    return {
      id: this.id,
      label: this.label,
      priority: this.priority,
      status: this.status,
      outcome: this.outcome,
      createdAt: this.createdAt,
      startedAt: this.startedAt,
      attempts: this.attempts,
      obsoleteAt: this.obsoleteAt
    }
  }

  /** Printing a handle shows its info, not the agenda it points to. */
  toJSON(): Tasklet.Info {
    return this.info()
  }

  toString(): string {
    return `Tasklet#${this.id}(${this.label}, ${this.priority}, ${this.outcome ?? this.status})`
  }

  unsafeAddObserver(f: Observer<A, E>): () => void {
    const exit = this.exit
    if (exit !== undefined) {
      f(exit)
      return constVoid
    }
    const observers = this.slot as Array<Observer<A, E>> | undefined
    if (observers === undefined) this.slot = [f]
    else observers.push(f)
    return () => {
      if (this.state >= DONE_BASE) return
      const waiting = this.slot as Array<Observer<A, E>> | undefined
      const i = waiting?.indexOf(f) ?? -1
      if (i >= 0) waiting!.splice(i, 1)
    }
  }

  get await(): Effect.Effect<Exit.Exit<A, E | Tasklet.AgendaOutcomeError>> {
    return Effect.callback((resume) => {
      const remove = this.unsafeAddObserver((exit) => resume(Effect.succeed(exit)))
      return Effect.sync(remove)
    })
  }

  get join(): Effect.Effect<A, E | Tasklet.AgendaOutcomeError> {
    return Effect.flatten(this.await)
  }

  get poll(): Effect.Effect<Option.Option<Exit.Exit<A, E | Tasklet.AgendaOutcomeError>>> {
    return Effect.sync(() => Option.fromNullishOr(this.exit))
  }

  get interruptFork(): Effect.Effect<void> {
    return Effect.withFiber((fiber) => {
      this.agenda.interruptRun(this, fiber.id)
      return Effect.void
    })
  }

  get interrupt(): Effect.Effect<Exit.Exit<A, E | Tasklet.AgendaOutcomeError>> {
    return Effect.andThen(this.interruptFork, this.await)
  }
}

const constVoid = () => {}

/** `Effect.isEffect` without its generic property check, on every submission. */
const isEffect = (u: unknown): boolean =>
  (typeof u === "object" || typeof u === "function") && u !== null && Effect.TypeId in u

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Tasklet.Outcome =>
  Exit.isSuccess(exit) ? "Completed" : Cause.hasInterruptsOnly(exit.cause) ? "Interrupted" : "Failed"

const invalidTaskletOptions = (options: unknown): InvalidOptions => {
  const decoded = Options.decodeTaskletOptions(options)
  return Result.isFailure(decoded)
    ? decoded.failure
    : new InvalidOptions({ option: "options", value: options, expected: "tasklet options" })
}

/**
 * The error for a `traceTasklets` option that is not a boolean, if any
 * (checked here rather than in `Options.AgendaOptions`, shared by the agenda
 * constructors).
 *
 * @internal
 */
export const invalidTraceTasklets = (options: { readonly traceTasklets?: unknown }): InvalidOptions | undefined =>
  options.traceTasklets === undefined || typeof options.traceTasklets === "boolean"
    ? undefined
    : new InvalidOptions({ option: "traceTasklets", value: options.traceTasklets, expected: "true or false" })

/**
 * A non-negative duration, or `undefined`: `Options.parseDuration`, kept
 * here for the modules that import it from the agenda.
 *
 * @internal
 */
export const decodeDuration = (input: unknown): Duration.Duration | undefined => Options.parseDuration(input)

interface BlockedSubmitter {
  readonly run: AnyRun
  resume: ((effect: Effect.Effect<AnyRun, AgendaClosed>) => void) | undefined
}

interface GcRequest {
  readonly collector: Effect.Effect<void, unknown>
  readonly resume: (effect: Effect.Effect<void, unknown>) => void
  /** Set when a tasklet asked on its worker's own fiber: that worker counts as parked meanwhile. */
  readonly worker: Worker | undefined
  done: boolean
}

/**
 * One garbage-collection barrier: the requests it serves, its bound and, once
 * every worker parked, the fiber running the collectors. At most one barrier
 * forms and one collects at a time.
 */
class Barrier {
  readonly requests: Array<GcRequest> = []
  phase: "forming" | "collecting" = "forming"
  /** Sleeps for `gcTimeout`, then gives the barrier up. */
  timer: Fiber.Fiber<void, never> | undefined = undefined
  collector: Fiber.Fiber<void, never> | undefined = undefined
  ended = false
}

/**
 * The worker a tasklet's fiber (and every fiber it forks) belongs to, set in
 * the context tasklets run under. `Agenda.safePoint`, `requestGc`, `quit` and
 * `exit` read it to recognise calls from the agenda's own tasklets.
 *
 * @internal
 */
export const CurrentWorker: Context.Reference<Worker | undefined> = Context.Reference<Worker | undefined>(
  "@refpersys/core/Agenda/CurrentWorker",
  { defaultValue: () => undefined }
)

/**
 * One agenda worker: a plain JavaScript loop, not a fiber. It takes tasklets
 * and runs the synchronous ones itself; any other tasklet gets a fiber of its
 * own, started under the tasklet's context (its first step runs at once, in
 * the loop), and the worker continues when that fiber ends.
 *
 * @internal
 */
export class Worker {
  state: "Idle" | "Run" | "GC" = "Idle"
  current: AnyRun | undefined = undefined
  /** The fiber of the running tasklet, once it did not end in its first step. */
  fiber: Fiber.Fiber<unknown, unknown> | undefined = undefined
  /** The span of the running tasklet, when traced. */
  span: Tracer.Span | undefined = undefined
  started = 0
  completed = 0
  failed = 0
  interrupted = 0
  gcParks = 0
  respawns = 0
  /** Set while the loop is scheduled to run (a wake-up or a continuation): never twice. */
  scheduled = false
  /** Set while parked between tasklets for a GC barrier. */
  parked = false
  /** A tasklet parked at `Agenda.safePoint`: resumes its fiber. */
  unpark: ((effect: Effect.Effect<void>) => void) | undefined = undefined

  /** The loop, as a scheduler task. */
  readonly resume: () => void
  /** Observer of the running tasklet's fiber. */
  readonly onExit: (exit: Exit.Exit<unknown, unknown>) => void
  readonly parkInTasklet: Effect.Effect<void>

  constructor(readonly agenda: AgendaImpl, readonly id: number) {
    this.resume = () => {
      this.scheduled = false
      agenda.loop(this)
    }
    this.onExit = (exit) => agenda.fiberEnded(this, exit)
    this.parkInTasklet = Effect.callback<void>((resume) => {
      this.unpark = resume
      this.state = "GC"
      this.gcParks++
      agenda.checkGc()
      // Interrupted while the collector runs: wait for it to end, so that no
      // tasklet code (finalizers included) runs during a collection.
      return Effect.suspend(() => {
        this.unpark = undefined
        this.state = this.current === undefined ? "Idle" : "Run"
        return agenda.gcRunning ? agenda.awaitGcEnd : Effect.void
      })
    })
  }

  toJSON(): WorkerState {
    return this.snapshot()
  }

  snapshot(): WorkerState {
    const run = this.current
    return new WorkerState({
      id: this.id,
      state: this.state,
      current: run === undefined ? undefined : { id: run.id, label: run.label, priority: run.priority },
      started: this.started,
      completed: this.completed,
      failed: this.failed,
      interrupted: this.interrupted,
      gcParks: this.gcParks,
      respawns: this.respawns
    })
  }
}

const counters = () => [0, 0, 0]

const liveClock = Context.get(Context.empty(), Clock.Clock)

const WAIT_BOUNDARIES = Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 28 })

/** The part of Effect's metric implementation `updater` uses (not public API). */
interface MetricWithHooks {
  readonly hook?: (context: Context.Context<never>) => { readonly update?: unknown } | undefined
}

let metricHooksCached = true

/**
 * Whether the agenda updates its metrics through their cached hooks (the
 * fast path) rather than `Metric.updateUnsafe`; a test asserts it is on.
 *
 * @internal
 */
export const metricHooksInUse = (): boolean => metricHooksCached

/**
 * An update function for one metric series in one context. Effect 4 finds a
 * series by a JSON key built on every `updateUnsafe` (a fifth of the cost of
 * a trivial tasklet); the series' hooks do not change, so they are looked up
 * once here. Guarded: if the metric does not have the expected shape (the
 * same hooks object twice, with an `update` function), the public
 * `updateUnsafe` is used instead, and `metricHooksInUse()` turns false.
 */
const updater = (metric: Metric.Metric<number, unknown>, context: Context.Context<never>): (value: number) => void => {
  try {
    const hook = (metric as unknown as MetricWithHooks).hook
    if (typeof hook === "function") {
      const hooks = hook.call(metric, context)
      if (hooks !== undefined && hooks === hook.call(metric, context) && typeof hooks.update === "function") {
        const update = hooks as { readonly update: (input: number, context: Context.Context<never>) => void }
        return (value) => update.update(value, context)
      }
    }
  } catch {
    // fall through to the public path
  }
  metricHooksCached = false
  return (value) => metric.updateUnsafe(value, context)
}

type Runner = (effect: Effect.Effect<unknown, unknown>) => Fiber.Fiber<unknown, unknown>

/**
 * The contexts tasklets of one submitter context run under, one per
 * (worker, level), built on first use; plus what tracing needs from it.
 */
class RunContexts {
  readonly contexts: Array<Context.Context<never> | undefined>
  /** `Effect.runForkWith` of each context, made once (it allocates a closure per call). */
  readonly runners: Array<Runner | undefined>
  /** The tracer to make tasklet spans with, or `undefined`: no span. */
  readonly tracer: Tracer.Tracer | undefined
  readonly parent: Option.Option<Tracer.AnySpan>
  /** The captured context without the submitter's `Scope`. */
  private readonly base: Context.Context<never>

  constructor(captured: Context.Context<never>, agenda: AgendaImpl) {
    this.contexts = new Array(agenda.workers.length * 3)
    this.runners = new Array(agenda.workers.length * 3)
    this.base = captured.mapUnsafe.has(Scope.Scope.key) ? Context.omit(Scope.Scope)(captured) : captured
    // Only an explicitly installed tracer makes spans: Effect's default one
    // is never exported, and a span per tasklet is not free.
    this.tracer = agenda.config.traceTasklets && captured.mapUnsafe.has(Tracer.TracerKey) &&
        Context.get(captured, References.TracerEnabled)
      ? Context.get(captured, Tracer.Tracer)
      : undefined
    this.parent = Context.getOption(captured, Tracer.ParentSpan)
  }

  build(agenda: AgendaImpl, level: Level, worker: Worker): Context.Context<never> {
    const context = Context.add(
      Context.add(this.base, Scheduler.Scheduler, agenda.core.levels[level]),
      CurrentWorker,
      worker
    )
    this.contexts[worker.id * 3 + level] = context
    return context
  }

  runner(agenda: AgendaImpl, level: Level, worker: Worker): Runner {
    const i = worker.id * 3 + level
    return this.runners[i] ??= Effect.runForkWith(this.contexts[i] ?? this.build(agenda, level, worker))
  }
}

/**
 * The agenda: three queues, N workers, aging, backpressure, GC barrier and
 * shutdown. Workers and all bookkeeping are synchronous JavaScript; Effect
 * runs the tasklets (a fiber each, unless synchronous) and the suspension
 * points of callers (waiting for room, a barrier or a drain).
 *
 * @internal
 */
export class AgendaImpl {
  lifecycle: "running" | "quitting" | "stopped" = "running"
  readonly queues: [RingQueue<AnyRun>, RingQueue<AnyRun>, RingQueue<AnyRun>] = [
    new RingQueue(),
    new RingQueue(),
    new RingQueue()
  ]
  /** Live queued tasklets per level (queues may hold interrupted ones until popped). */
  readonly queued = counters()
  readonly running = counters()
  readonly blocked: [RingQueue<BlockedSubmitter>, RingQueue<BlockedSubmitter>, RingQueue<BlockedSubmitter>] = [
    new RingQueue(),
    new RingQueue(),
    new RingQueue()
  ]
  readonly blockedCount = counters()
  readonly submitted = counters()
  readonly started = counters()
  /** Per outcome (COMPLETED..OBSOLETE), per level. */
  readonly ended: Array<Array<number>> = [counters(), counters(), counters(), counters(), counters()]
  readonly waitSummary = [new Summary(), new Summary(), new Summary()]
  readonly runSummary = [new Summary(), new Summary(), new Summary()]
  readonly workers: Array<Worker> = []
  readonly idle: Array<Worker> = []
  private nextId = 1
  private sinceNormal = 0
  private sinceLow = 0
  agingPicks = 0

  gcCycles = 0
  private gcEndWaiters: Array<(effect: Effect.Effect<void>) => void> = []
  readonly awaitGcEnd: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (!this.gcRunning) return resume(Effect.void)
    this.gcEndWaiters.push(resume)
  })

  private drainWaiters: Array<(effect: Effect.Effect<void>) => void> = []
  private stopWaiters: Array<() => void> = []
  /** Set by the first quit/exit to stop the workers; later calls share its report. */
  private stopped: Deferred.Deferred<ShutdownReport> | undefined = undefined

  private readonly waitHistogram: ReadonlyArray<Metric.Histogram<number>>
  private readonly runHistogram: ReadonlyArray<Metric.Histogram<number>>
  private readonly outcomeCounter: ReadonlyArray<ReadonlyArray<Metric.Counter<number>>>
  readonly clock: Clock.Clock
  private readonly recordWait: ReadonlyArray<(value: number) => void>
  private readonly recordRun: ReadonlyArray<(value: number) => void>
  private readonly recordOutcome: ReadonlyArray<ReadonlyArray<(value: number) => void>>

  constructor(
    readonly config: AgendaConfig,
    /** The agenda's own context (from its creation), at the core's High level: internal fibers run under it. */
    readonly context: Context.Context<never>,
    readonly core: PrioritySchedulerImpl
  ) {
    const clock = Context.get(context, Clock.Clock)
    this.clock = clock
    const attributes = (level: number, outcome?: string): Metric.Metric.AttributeSet =>
      outcome === undefined
        ? { agenda: config.name, priority: Priority.all[level] }
        : { agenda: config.name, priority: Priority.all[level], outcome }
    const histogram = (name: string, description: string, level: number) =>
      Metric.histogram(name, { description, boundaries: WAIT_BOUNDARIES, attributes: attributes(level) })
    this.waitHistogram = [0, 1, 2].map((l) =>
      histogram("refpersys_agenda_wait_ms", "time from submission to start", l)
    )
    this.runHistogram = [0, 1, 2].map((l) => histogram("refpersys_agenda_run_ms", "time from start to end", l))
    this.outcomeCounter = [0, 1, 2, 3, 4].map((o) =>
      [0, 1, 2].map((l) =>
        Metric.counter("refpersys_agenda_tasklets_total", {
          description: "tasklets ended, by outcome",
          incremental: true,
          attributes: attributes(l, OUTCOMES[o])
        })
      )
    )
    this.recordWait = this.waitHistogram.map((m) => updater(m, context))
    this.recordRun = this.runHistogram.map((m) => updater(m, context))
    this.recordOutcome = this.outcomeCounter.map((ms) => ms.map((m) => updater(m, context)))
    if (clock === liveClock) {
      const origin = clock.currentTimeMillisUnsafe() - performance.now()
      this.now = () => origin + performance.now()
    } else {
      this.now = () => Number(clock.currentTimeNanosUnsafe()) / 1e6
    }
    for (let i = 0; i < config.workers; i++) this.workers.push(new Worker(this, i))
    this.enter = Effect.withFiber((fiber) => {
      const worker = this.starting!
      this.starting = undefined
      worker.fiber = fiber
      return worker.current!.effect!
    })
  }

  /**
   * Clock time in fractional milliseconds, read three times per tasklet. With
   * Effect's live clock this is `performance.now()` on the same epoch, which
   * avoids the BigInt that `currentTimeNanosUnsafe` allocates; any other
   * clock (TestClock in tests) is asked directly.
   */
  readonly now: () => number

  // ---- workers ---------------------------------------------------------

  /** The worker whose tasklet fiber `enter` is starting. */
  private starting: Worker | undefined = undefined
  /**
   * The first effect of every tasklet fiber: records the fiber on its worker
   * (before any tasklet code runs, so `safePoint` and `requestGc` recognise
   * it) and continues with the tasklet. One effect for all tasklets: no
   * closure per tasklet.
   */
  private readonly enter: Effect.Effect<unknown, unknown>

  /** A method, not a field read, so the loop re-reads it after calls that may stop the agenda. */
  isStopped(): boolean {
    return this.lifecycle === "stopped"
  }

  /** Starts the workers: each waits for work. */
  startWorkers(): void {
    for (const worker of this.workers) this.idle.push(worker)
  }

  /**
   * Schedules a worker's loop on the core at a level: wake-ups (at High, so
   * the pick, not the wake-up, is prioritized) and continuations. Never run
   * inline: a wake-up from `submit` would otherwise run the worker, and the
   * tasklets it picks, inside the submitter.
   */
  schedule(worker: Worker, level: Level): void {
    if (worker.scheduled) return
    worker.scheduled = true
    this.core.push(level, worker.resume)
  }

  /**
   * A worker's loop: takes tasklets and runs them until there is none, a GC
   * barrier wants it parked, a tasklet suspends (its fiber's end continues the
   * loop), or the core's slice is over (it continues in a later slice, at the
   * level of the work in hand).
   */
  loop(worker: Worker): void {
    const core = this.core
    // The end of one tasklet is the start of the next: one clock reading serves both.
    let now = this.now()
    for (let ran = 1;; ran++) {
      if (this.lifecycle === "stopped") {
        worker.state = "Idle"
        return this.checkStopped()
      }
      if (this.gcActive) return this.park(worker)
      const run = this.pick()
      if (run === undefined) {
        worker.state = "Idle"
        this.idle.push(worker)
        this.checkGc()
        return
      }
      if (this.isStopped()) {
        // Stopped by code a pick resumed (an admitted submitter): the picked
        // tasklet is dropped like the rest of the queue.
        this.settle(run, DROPPED, undefined)
        worker.state = "Idle"
        return this.checkStopped()
      }
      this.start(worker, run, now)
      const ended = this.runTasklet(worker, run)
      if (ended === undefined) return
      now = ended
      if ((ran & 15) === 0 && (core.sliceOver() || (!core.inSlice && ran >= 2048))) {
        return this.schedule(worker, run.level)
      }
    }
  }

  /**
   * Runs a started tasklet: a synchronous one at once, any other on a fiber
   * of its own under the tasklet's context. Returns the clock reading of its
   * end if it ended already.
   */
  private runTasklet(worker: Worker, run: AnyRun): number | undefined {
    const contexts = this.contextsOf(run.context)
    const tracer = contexts.tracer
    if (tracer !== undefined) worker.span = this.startSpan(tracer, contexts, worker, run)
    const exit = runSync(run.effect!)
    if (exit !== undefined) return this.finishRun(worker, exit)
    const runner = worker.span === undefined
      ? contexts.runner(this, run.level, worker)
      : Effect.runForkWith(Context.add(
        contexts.contexts[worker.id * 3 + run.level] ?? contexts.build(this, run.level, worker),
        Tracer.ParentSpan,
        worker.span
      ))
    this.starting = worker
    const fiber = runner(this.enter)
    this.starting = undefined
    const done = fiber.pollUnsafe()
    if (done !== undefined) {
      worker.fiber = undefined
      return this.finishRun(worker, done)
    }
    fiber.addObserver(worker.onExit)
    return undefined
  }

  /** The tasklet fiber of a worker ended: settle its tasklet and continue, scheduled. */
  fiberEnded(worker: Worker, exit: Exit.Exit<unknown, unknown>): void {
    // Unset when a stop abandoned this tasklet: it is settled already.
    if (worker.fiber === undefined || worker.current === undefined) return
    worker.fiber = undefined
    const level = worker.current.level
    this.finishRun(worker, exit)
    if (this.lifecycle === "stopped") return this.checkStopped()
    this.schedule(worker, level)
  }

  /** Settles the worker's tasklet, ends its span and logs its failure. */
  private finishRun(worker: Worker, exit: Exit.Exit<unknown, unknown>): number {
    const run = worker.current!
    const span = worker.span
    // Ended before the outcome is told: whoever awaits it may resume at once.
    if (span !== undefined) {
      worker.span = undefined
      span.attribute("tasklet.outcome", outcomeOf(exit))
      span.end(this.clock.currentTimeNanosUnsafe(), exit)
    }
    const now = this.finish(worker, exit)
    // Logged with the agenda's loggers (those in context when it was made).
    if (exit._tag === "Failure" && run.state === FAILED && this.config.logFailures) {
      Effect.runForkWith(this.context)(Effect.uninterruptible(this.logFailure(run, exit.cause)))
    }
    return now
  }

  private startSpan(tracer: Tracer.Tracer, contexts: RunContexts, worker: Worker, run: AnyRun): Tracer.Span {
    const parent = contexts.parent
    const span = tracer.span({
      name: run.explicitLabel ?? "tasklet",
      parent,
      annotations: Context.empty(),
      links: [],
      startTime: this.clock.currentTimeNanosUnsafe(),
      kind: "internal",
      root: parent._tag === "None",
      sampled: parent._tag === "None" ? true : parent.value.sampled
    })
    span.attribute("agenda.name", this.config.name)
    span.attribute("agenda.worker", worker.id)
    span.attribute("tasklet.id", run.id)
    span.attribute("tasklet.label", run.label)
    span.attribute("tasklet.priority", run.priority)
    span.attribute("tasklet.wait_ms", run.startedAt! - run.createdAt)
    return span
  }

  /** Contexts of tasklets per submitter context, weakly held: they go with the submitter. */
  private readonly memo = new WeakMap<Context.Context<never>, RunContexts>()
  /** The last looked up: consecutive tasklets usually share a submitter. */
  private lastCaptured: Context.Context<never> | undefined = undefined
  private lastContexts: RunContexts | undefined = undefined

  private contextsOf(captured: Context.Context<never>): RunContexts {
    if (captured === this.lastCaptured) return this.lastContexts!
    let contexts = this.memo.get(captured)
    if (contexts === undefined) {
      contexts = new RunContexts(captured, this)
      this.memo.set(captured, contexts)
    }
    this.lastCaptured = captured
    this.lastContexts = contexts
    return contexts
  }

  /** Parks a worker between tasklets for a GC barrier; `releaseWorkers` schedules it again. */
  private park(worker: Worker): void {
    worker.parked = true
    worker.state = "GC"
    worker.gcParks++
    this.checkGc()
  }

  private wakeWorkers(): void {
    let wanted = this.queued[0] + this.queued[1] + this.queued[2]
    while (wanted > 0 && this.idle.length > 0) {
      const worker = this.idle.pop()!
      wanted--
      this.schedule(worker, 0)
    }
  }

  // ---- submission ------------------------------------------------------

  /**
   * Validates options and creates the run, or returns the typed error. Shared
   * by every submit flavour so they agree on validation.
   */
  makeRun<A, E>(
    effect: Effect.Effect<A, E>,
    options: Tasklet.Options | undefined,
    context: Context.Context<never>
  ): Run<A, E> | InvalidOptions {
    let level: Level = 1
    let label: string | undefined = undefined
    let obsoleteAt: number | undefined = undefined
    const createdAt = this.now()
    if (options !== undefined) {
      // Fast acceptance of valid options; anything else is reported by the
      // shared schema (`Options.decodeTaskletOptions`), so every entry point
      // gives the same error for the same input.
      if (typeof options !== "object" || options === null || Array.isArray(options)) return invalidTaskletOptions(options)
      const { label: l, obsoleteAfter, priority } = options
      if (priority !== undefined) {
        if (priority !== "High" && priority !== "Normal" && priority !== "Low") return invalidTaskletOptions(options)
        level = Priority.toIndex(priority)
      }
      if (l !== undefined) {
        if (typeof l !== "string") return invalidTaskletOptions(options)
        label = l
      }
      if (obsoleteAfter !== undefined) {
        const d = Options.parseDuration(obsoleteAfter)
        if (d === undefined) return invalidTaskletOptions(options)
        if (Duration.isFinite(d)) obsoleteAt = createdAt + Duration.toMillis(d)
      }
    }
    if (!isEffect(effect)) {
      return new InvalidOptions({ option: "effect", value: effect, expected: "an Effect" })
    }
    return new Run(this, this.nextId++, level, label, effect, context, createdAt, obsoleteAt)
  }

  closedError(action: "submit" | "requestGc" = "submit"): AgendaClosed {
    return new AgendaClosed({ state: this.lifecycle === "quitting" ? "quitting" : "stopped", action })
  }

  /** Whether a new run at this level must wait (full, or others already waiting). */
  isFull(level: Level): boolean {
    return this.queued[level] >= this.config.capacity[level] || this.blockedCount[level] > 0
  }

  fullError(level: Level): AgendaFull {
    return new AgendaFull({ priority: Priority.fromIndex(level), capacity: this.config.capacity[level] })
  }

  enqueue(run: AnyRun): void {
    const level = run.level
    this.queues[level].push(run)
    this.queued[level]++
    this.submitted[level]++
    if (this.idle.length > 0 && !this.gcWanted()) this.wakeWorkers()
  }

  /** Waits for room at the run's level, then enqueues it (FIFO among waiters). */
  waitForRoom<A, E>(run: Run<A, E>): Effect.Effect<Run<A, E>, AgendaClosed> {
    return Effect.callback<Run<A, E>, AgendaClosed>((resume) => {
      const entry: BlockedSubmitter = { run, resume: resume as BlockedSubmitter["resume"] }
      this.blocked[run.level].push(entry)
      this.blockedCount[run.level]++
      return Effect.sync(() => {
        if (entry.resume !== undefined) {
          entry.resume = undefined
          this.blockedCount[run.level]--
          this.admitBlocked(run.level)
        }
      })
    })
  }

  private admitBlocked(level: Level): void {
    const blocked = this.blocked[level]
    while (blocked.length > 0 && this.queued[level] < this.config.capacity[level]) {
      const entry = blocked.shift()!
      const resume = entry.resume
      if (resume === undefined) continue
      entry.resume = undefined
      this.blockedCount[level]--
      this.enqueue(entry.run)
      // Resumed at once (Effect 4 runs the submitter right here), so that an
      // interruption cannot land between admission and the handle; the loop
      // re-checks the lifecycle after a pick for what the submitter may do.
      resume(Effect.succeed(entry.run))
    }
  }

  private rejectBlocked(): void {
    const error = this.closedError()
    for (const level of [0, 1, 2] as const) {
      for (const entry of this.blocked[level].drain()) {
        const resume = entry.resume
        if (resume === undefined) continue
        entry.resume = undefined
        this.blockedCount[level]--
        resume(Effect.fail(error))
      }
    }
  }

  // ---- picking and running ---------------------------------------------

  private chooseLevel(): Level {
    const queued = this.queued
    const h = queued[0]
    const n = queued[1]
    const l = queued[2]
    if (this.config.aging > 0) {
      if (l > 0 && this.sinceLow >= this.config.aging) {
        if (h + n > 0) this.agingPicks++
        return 2
      }
      if (n > 0 && this.sinceNormal >= this.config.aging) {
        if (h > 0) this.agingPicks++
        return 1
      }
    }
    return h > 0 ? 0 : n > 0 ? 1 : 2
  }

  /** Takes the next tasklet to run, settling obsolete ones on the way. */
  pick(): AnyRun | undefined {
    while (this.queued[0] + this.queued[1] + this.queued[2] > 0) {
      const level = this.chooseLevel()
      if (level === 2) this.sinceLow = 0
      else if (this.queued[2] > 0) this.sinceLow++
      if (level === 1) this.sinceNormal = 0
      else if (level === 0 && this.queued[1] > 0) this.sinceNormal++
      const queue = this.queues[level]
      let run = queue.shift()!
      // Skip runs interrupted while queued (already settled and uncounted).
      while (run.state !== QUEUED) run = queue.shift()!
      this.queued[level]--
      if (this.blockedCount[level] > 0) this.admitBlocked(level)
      if (run.obsoleteAt !== undefined && this.now() > run.obsoleteAt) {
        this.settle(run, OBSOLETE, undefined)
        if (this.drainWaiters.length > 0) this.checkDrained()
        continue
      }
      return run
    }
    return undefined
  }

  start(worker: Worker, run: AnyRun, now: number): void {
    const level = run.level
    run.state = RUNNING
    run.startedAt = now
    worker.current = run
    worker.state = "Run"
    worker.started++
    this.running[level]++
    this.started[level]++
    const wait = now - run.createdAt
    this.waitSummary[level].add(wait)
    this.recordWait[level](wait)
  }

  /** Settles the worker's current tasklet; returns the clock reading it used. */
  finish(worker: Worker, exit: Exit.Exit<unknown, unknown>): number {
    const run = worker.current!
    const level = run.level
    const now = this.now()
    const elapsed = now - run.startedAt!
    this.runSummary[level].add(elapsed)
    this.recordRun[level](elapsed)
    worker.current = undefined
    worker.state = "Idle"
    this.running[level]--
    let state: number
    if (Exit.isSuccess(exit)) {
      state = COMPLETED
      worker.completed++
    } else if (Cause.hasInterruptsOnly(exit.cause)) {
      state = INTERRUPTED
      worker.interrupted++
    } else {
      state = FAILED
      worker.failed++
    }
    this.settle(run, state, exit)
    if (this.drainWaiters.length > 0) this.checkDrained()
    return now
  }

  /** `exit` undefined: a drop or obsolescence, whose Exit the run builds when first asked. */
  private settle(run: AnyRun, state: number, exit: Exit.Exit<any, any> | undefined): void {
    const observers = run.settleSlot(state, exit)
    run.effect = undefined
    this.ended[state - DONE_BASE][run.level]++
    this.recordOutcome[state - DONE_BASE][run.level](1)
    if (observers !== undefined) {
      exit = run.exit!
      // Observers are user code: one that throws must not keep the others (a
      // `join` among them) from being told, nor break the caller's bookkeeping.
      for (let i = 0; i < observers.length; i++) {
        try {
          observers[i](exit)
        } catch (error) {
          this.observerFailed(run, error)
        }
      }
    }
  }

  private observerFailed(run: AnyRun, error: unknown): void {
    const log = Effect.logError(
      `an outcome observer of tasklet #${run.id} (${run.label}) threw; the other observers were still told`,
      Cause.die(error)
    ).pipe(Effect.annotateLogs({ agenda: this.config.name, tasklet: run.label }))
    Effect.runForkWith(this.context)(log)
  }

  logFailure(run: AnyRun, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    const what = Cause.hasDies(cause) ? "died with a defect" : "failed"
    return Effect.logWarning(`tasklet #${run.id} (${run.label}) ${what}; its worker goes on`, cause).pipe(
      Effect.annotateLogs({ agenda: this.config.name, tasklet: run.label, priority: run.priority })
    )
  }

  interruptRun(run: AnyRun, by: number | undefined): void {
    if (run.state === QUEUED) {
      this.queued[run.level]--
      this.settle(run, INTERRUPTED, Exit.interrupt(by))
      if (this.blockedCount[run.level] > 0) this.admitBlocked(run.level)
      if (this.drainWaiters.length > 0) this.checkDrained()
    } else if (run.state === RUNNING) {
      // Found by search rather than kept on every run (a field per queued
      // tasklet); interrupting is rare and workers are few.
      const worker = this.workers.find((w) => w.current === run)
      // The tasklet's fiber ends; its worker goes on with the next tasklet.
      if (worker !== undefined && worker.fiber !== undefined) {
        worker.respawns++
        worker.fiber.interruptUnsafe(by)
      }
    }
  }

  // ---- garbage-collection barrier ----------------------------------------

  /** A barrier forming (requests waiting for every worker to park). */
  private forming: Barrier | undefined = undefined
  /** A barrier whose collectors run. */
  private collecting: Barrier | undefined = undefined
  /** `forming || collecting`, kept as a field: workers read it before every pick. */
  private gcActive = false
  gcTimeouts = 0

  get gcRunning(): boolean {
    return this.collecting !== undefined
  }

  gcWanted(): boolean {
    return this.gcActive
  }

  private updateGc(): void {
    this.gcActive = this.forming !== undefined || this.collecting !== undefined
  }

  /**
   * A request from a tasklet on its worker's own fiber counts that worker as
   * parked until the barrier ends (it is blocked in the request, so no code
   * of it runs); otherwise the barrier would wait for the caller for ever.
   * From any other fiber (including fibers a tasklet forked) the request
   * waits like an outsider's, bounded by `gcTimeout`.
   */
  requestGc<E>(collector: Effect.Effect<void, E>): Effect.Effect<void, E | AgendaClosed | GcTimeout> {
    return Effect.withFiber((fiber) => {
      const w = fiber.getRef(CurrentWorker)
      const own = w !== undefined && w.agenda === this && w.fiber === fiber && w.current !== undefined ? w : undefined
      return Effect.callback<void, E | AgendaClosed | GcTimeout>((resume) => {
        if (this.lifecycle === "stopped") return resume(Effect.fail(this.closedError("requestGc")))
        const barrier = this.forming ?? this.formBarrier()
        const request: GcRequest = { collector, resume: resume as GcRequest["resume"], worker: own, done: false }
        barrier.requests.push(request)
        if (own !== undefined) {
          own.state = "GC"
          own.gcParks++
        }
        this.checkGc()
        return Effect.sync(() => this.cancelRequest(barrier, request))
      })
    })
  }

  private formBarrier(): Barrier {
    const barrier = new Barrier()
    this.forming = barrier
    this.updateGc()
    const bound = this.config.gcTimeout
    if (bound !== undefined) {
      const timer = Effect.runForkWith(this.context)(Effect.sleep(bound))
      barrier.timer = timer
      timer.addObserver((exit) => {
        if (Exit.isSuccess(exit)) this.giveUpBarrier(barrier, "timeout")
      })
    }
    return barrier
  }

  /** A requester stopped waiting: it leaves the barrier, which dissolves when no request is left. */
  private cancelRequest(barrier: Barrier, request: GcRequest): void {
    if (request.done) return
    request.done = true
    this.unparkCaller(request)
    if (barrier.phase !== "forming" || barrier.ended) return
    const i = barrier.requests.indexOf(request)
    if (i >= 0) barrier.requests.splice(i, 1)
    if (barrier.requests.length === 0) this.giveUpBarrier(barrier, "cancelled")
  }

  private unparkCaller(request: GcRequest): void {
    const w = request.worker
    if (w !== undefined && w.state === "GC" && w.unpark === undefined) w.state = w.current === undefined ? "Idle" : "Run"
  }

  private settleRequest(request: GcRequest, exit: Effect.Effect<void, unknown>): void {
    if (request.done) return
    request.done = true
    this.unparkCaller(request)
    request.resume(exit)
  }

  /** Starts the collection once every worker is at a safe point. */
  checkGc(): void {
    const barrier = this.forming
    if (this.collecting !== undefined || barrier === undefined) return
    for (const w of this.workers) if (w.state === "Run" && !this.isParkedCaller(w)) return
    this.forming = undefined
    this.collecting = barrier
    barrier.phase = "collecting"
    const results: Array<[ReadonlyArray<GcRequest>, Exit.Exit<void, unknown>]> = []
    // Requesters are told only once every collector ran: a requesting tasklet
    // resumed earlier would run code while a later collector runs.
    const collect = Effect.forEach(uniqueCollectors(barrier.requests), ([collector, requests]) =>
      Effect.map(Effect.exit(collector), (exit) => {
        results.push([requests, exit])
      }), { discard: true }).pipe(
        Effect.ensuring(Effect.sync(() => this.endBarrier(barrier, results)))
      )
    // Started from the core (not inline: checkGc runs inside workers and
    // requesters) on the agenda's context, whose scheduler is the High level.
    this.core.push(0, () => {
      if (!barrier.ended) barrier.collector = Effect.runForkWith(this.context)(collect)
    })
  }

  private endBarrier(
    barrier: Barrier,
    results: ReadonlyArray<[ReadonlyArray<GcRequest>, Exit.Exit<void, unknown>]>
  ): void {
    if (barrier.ended) return
    barrier.ended = true
    barrier.timer?.interruptUnsafe()
    this.collecting = undefined
    this.updateGc()
    this.gcCycles++
    for (const [requests, exit] of results) for (const r of requests) this.settleRequest(r, exit)
    // Requests whose collector never reported (it was interrupted).
    for (const r of barrier.requests) this.settleRequest(r, Exit.interrupt())
    this.releaseWorkers()
  }

  /**
   * Gives a barrier up: its bound passed, its last requester left, or the
   * agenda stops. A running collector is interrupted but not waited for (it
   * may ignore interruption); the workers resume at once.
   */
  private giveUpBarrier(barrier: Barrier, why: "timeout" | "cancelled" | "stopped"): void {
    if (barrier.ended) return
    barrier.ended = true
    barrier.timer?.interruptUnsafe()
    barrier.collector?.interruptUnsafe()
    const wasCollecting = barrier.phase === "collecting"
    if (this.forming === barrier) this.forming = undefined
    if (this.collecting === barrier) this.collecting = undefined
    this.updateGc()
    if (why === "timeout") this.gcTimeouts++
    const error = why === "stopped"
      ? this.closedError("requestGc")
      : new GcTimeout({
        phase: barrier.phase,
        timeoutMs: this.config.gcTimeout === undefined ? Infinity : Duration.toMillis(this.config.gcTimeout),
        busy: this.workers.flatMap((w) =>
          w.state === "Run" && w.current !== undefined && !this.isParkedCaller(w) ? [w.current.label] : []
        )
      })
    for (const r of barrier.requests) this.settleRequest(r, Effect.fail(error))
    // A forming barrier shares the parked workers with a collecting one:
    // release them only when no collection holds them.
    if (wasCollecting || this.collecting === undefined) this.releaseWorkers()
  }

  private releaseWorkers(): void {
    if (this.collecting !== undefined) return
    for (const w of this.workers) {
      if (w.parked) {
        w.parked = false
        w.state = "Idle"
        this.schedule(w, 0)
      }
      const unpark = w.unpark
      if (unpark !== undefined) {
        w.unpark = undefined
        w.state = w.current === undefined ? "Idle" : "Run"
        // Scheduled: resumed here, the tasklet would run inside the releaser.
        this.core.push(w.current === undefined ? 0 : w.current.level, () => unpark(Effect.void))
      }
    }
    const waiters = this.gcEndWaiters
    this.gcEndWaiters = []
    for (const resume of waiters) resume(Effect.void)
    this.checkGc()
    if (!this.gcWanted()) this.wakeWorkers()
  }

  // ---- shutdown --------------------------------------------------------

  /**
   * Tasklets that called quit or exit on this agenda (or whose forked fibers
   * did). A stop does not wait for them: they are the ones waiting for it.
   */
  private readonly callers = new Set<AnyRun>()

  /**
   * Tasklets blocked in their own quit or exit on their worker's own fiber:
   * no code of theirs runs until the stop returns, so a GC barrier counts
   * them as parked (it would otherwise wait for them, and they for it).
   */
  private readonly parkedCallers = new Set<AnyRun>()

  isParkedCaller(w: Worker): boolean {
    return this.parkedCallers.size > 0 && w.current !== undefined && this.parkedCallers.has(w.current)
  }

  private callersRunning(): number {
    let n = 0
    for (const run of this.callers) if (run.state === RUNNING) n++
    return n
  }

  private isDrained(): boolean {
    return this.queued[0] + this.queued[1] + this.queued[2] === 0 &&
      this.running[0] + this.running[1] + this.running[2] === (this.callers.size === 0 ? 0 : this.callersRunning())
  }

  private checkDrained(): void {
    if (this.drainWaiters.length === 0 || !this.isDrained()) return
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const resume of waiters) resume(Effect.void)
  }

  readonly awaitIdle: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.isDrained()) return resume(Effect.void)
    this.drainWaiters.push(resume)
    return Effect.sync(() => {
      const i = this.drainWaiters.indexOf(resume)
      if (i >= 0) this.drainWaiters.splice(i, 1)
    })
  })

  /**
   * Waits until `register`'s callback is called (`true`) or `timeout` passes
   * on the agenda's clock (`false`). It does not rely on being interrupted:
   * scope finalizers run uninterruptibly, where `Effect.timeout` around a
   * wait cannot cut it short.
   */
  private bounded(
    timeout: Duration.Duration | undefined,
    register: (done: () => void) => () => void
  ): Effect.Effect<boolean> {
    return Effect.callback<boolean>((resume) => {
      let settled = false
      let unregister: (() => void) | undefined = undefined
      let timer: Fiber.Fiber<void, never> | undefined = undefined
      const finish = (ok: boolean) => {
        if (settled) return
        settled = true
        unregister?.()
        timer?.interruptUnsafe()
        resume(Effect.succeed(ok))
      }
      unregister = register(() => finish(true))
      if (settled) unregister()
      else if (timeout !== undefined) {
        const sleeper = Effect.runForkWith(this.context)(Effect.sleep(timeout))
        timer = sleeper
        sleeper.addObserver((exit) => {
          if (Exit.isSuccess(exit)) finish(false)
        })
      }
      return Effect.sync(() => {
        settled = true
        unregister?.()
        timer?.interruptUnsafe()
      })
    })
  }

  private awaitDrained(timeout: Duration.Duration | undefined): Effect.Effect<boolean> {
    return this.awaitCondition(timeout, () => this.isDrained(), "drainWaiters")
  }

  /**
   * Waits, at most `timeout`, until `holds()`: at once if it holds already,
   * else until the check that empties the `list` waiters resumes this one.
   */
  private awaitCondition(
    timeout: Duration.Duration | undefined,
    holds: () => boolean,
    list: "drainWaiters" | "stopWaiters"
  ): Effect.Effect<boolean> {
    return this.bounded(timeout, (done) => {
      if (holds()) {
        done()
        return constVoid
      }
      const resume = () => done()
      this[list].push(resume)
      return () => {
        // The list is read again here: a check swaps in a fresh one when it resumes.
        const waiters: Array<unknown> = this[list]
        const i = waiters.indexOf(resume)
        if (i >= 0) waiters.splice(i, 1)
      }
    })
  }

  /** Whether every tasklet fiber ended, except those of callers of the stop. */
  private workersStopped(): boolean {
    for (const w of this.workers) {
      if (w.fiber !== undefined && !(w.current !== undefined && this.callers.has(w.current))) return false
    }
    return true
  }

  checkStopped(): void {
    if (this.stopWaiters.length === 0 || !this.workersStopped()) return
    const waiters = this.stopWaiters
    this.stopWaiters = []
    for (const resume of waiters) resume()
  }

  private awaitWorkersStopped(timeout: Duration.Duration | undefined): Effect.Effect<boolean> {
    return this.awaitCondition(timeout, () => this.workersStopped(), "stopWaiters")
  }

  /**
   * Interrupts the worker fibers (sparing the tasklets that called the stop,
   * which end on their own) and waits for them, at most `abandonAfter`. A fiber
   * still running then (its tasklet ignores interruption: `Effect.never`
   * inside `Effect.uninterruptible`, an uninterruptible busy loop) is
   * abandoned: its tasklet is settled as interrupted and counted, and the
   * fiber is left to end on its own. Returns how many were abandoned.
   */
  private stopWorkers(): Effect.Effect<number> {
    return Effect.suspend(() => {
      for (const w of this.workers) {
        if (w.current !== undefined && this.callers.has(w.current)) continue
        w.fiber?.interruptUnsafe()
      }
      return Effect.map(this.awaitWorkersStopped(this.config.abandonAfter), (ok) => ok ? 0 : this.abandonWorkers())
    })
  }

  private abandonWorkers(): number {
    let abandoned = 0
    for (const w of this.workers) {
      if (w.fiber === undefined || (w.current !== undefined && this.callers.has(w.current))) continue
      w.fiber = undefined
      if (w.current !== undefined) {
        this.finishRun(w, Exit.interrupt())
        abandoned++
      }
      w.state = "Idle"
    }
    return abandoned
  }

  /**
   * Records the tasklet calling quit or exit, when the caller is one of this
   * agenda's tasklets or a fiber it forked; see `callers`.
   */
  private addCaller(fiber: Fiber.Fiber<unknown, unknown>): void {
    const w = fiber.getRef(CurrentWorker)
    if (w === undefined || w.agenda !== this || w.current === undefined) return
    this.callers.add(w.current)
    if (w.fiber === fiber) {
      this.parkedCallers.add(w.current)
      this.checkGc()
    }
  }

  quit(timeout: Duration.Duration | undefined): Effect.Effect<ShutdownReport> {
    return Effect.withFiber((fiber) => {
      if (this.stopped !== undefined) return Deferred.await(this.stopped)
      this.addCaller(fiber)
      if (this.lifecycle === "running") {
        this.lifecycle = "quitting"
        this.rejectBlocked()
      }
      return Effect.flatMap(this.awaitDrained(timeout), (ok) => this.stop(ok ? "quit" : "exit", !ok))
    })
  }

  exit(): Effect.Effect<ShutdownReport> {
    return Effect.withFiber((fiber) => {
      if (this.stopped === undefined) this.addCaller(fiber)
      return this.stop("exit", false)
    })
  }

  /**
   * After a stop, waits until every worker fiber ended, including those
   * running tasklets that called quit or exit themselves (the stop could not
   * wait for them): they get `abandonAfter` to end on their own, then are
   * interrupted and get `abandonAfter` again, then are abandoned. Scope
   * close runs this, so it returns only when no tasklet runs, or the bounds
   * passed.
   */
  awaitAllWorkers(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.callers.size === 0) return Effect.void
      this.callers.clear()
      return Effect.flatMap(this.awaitWorkersStopped(this.config.abandonAfter), (ok) => {
        if (ok) return Effect.void
        return this.stopWorkers().pipe(Effect.asVoid)
      })
    })
  }

  private stop(mode: "quit" | "exit", timedOut: boolean): Effect.Effect<ShutdownReport> {
    return Effect.suspend(() => {
      if (this.stopped !== undefined) return Deferred.await(this.stopped)
      const stopped = Deferred.makeUnsafe<ShutdownReport>()
      this.stopped = stopped
      const wasQuitting = this.lifecycle === "quitting"
      this.lifecycle = "stopped"
      if (!wasQuitting) this.rejectBlocked()
      // Exit wins over a GC barrier: its requests fail, a running collector is
      // interrupted (not waited for) and parked workers are released.
      if (this.forming !== undefined) this.giveUpBarrier(this.forming, "stopped")
      if (this.collecting !== undefined) this.giveUpBarrier(this.collecting, "stopped")
      let dropped = 0
      for (const level of [0, 1, 2] as const) {
        for (const run of this.queues[level].drain()) {
          if (run.state !== QUEUED) continue
          this.queued[level]--
          this.settle(run, DROPPED, undefined)
          dropped++
        }
      }
      const interruptedBefore = this.sumOutcome(INTERRUPTED)
      return Effect.flatMap(this.stopWorkers(), (abandoned) => {
        this.checkDrained()
        const report = new ShutdownReport({
          mode,
          timedOut,
          dropped,
          interrupted: this.sumOutcome(INTERRUPTED) - interruptedBefore,
          abandoned,
          stats: this.stats()
        })
        // The callers run on from here: no longer parked.
        this.parkedCallers.clear()
        Deferred.doneUnsafe(stopped, Exit.succeed(report))
        return Deferred.await(stopped)
      })
    }).pipe(Effect.uninterruptible)
  }

  private sumOutcome(state: number): number {
    const xs = this.ended[state - DONE_BASE]
    return xs[0] + xs[1] + xs[2]
  }

  // ---- snapshots -------------------------------------------------------

  private levelStats(levels: ReadonlyArray<Level>): PriorityStats {
    const sum = (xs: ReadonlyArray<number>) => levels.reduce((acc: number, l) => acc + xs[l], 0)
    const merge = (summaries: ReadonlyArray<Summary>) => {
      const s = new Summary()
      for (const l of levels) s.merge(summaries[l])
      return s.toJSON()
    }
    return new PriorityStats({
      submitted: sum(this.submitted),
      started: sum(this.started),
      completed: sum(this.ended[COMPLETED - DONE_BASE]),
      failed: sum(this.ended[FAILED - DONE_BASE]),
      interrupted: sum(this.ended[INTERRUPTED - DONE_BASE]),
      dropped: sum(this.ended[DROPPED - DONE_BASE]),
      obsolete: sum(this.ended[OBSOLETE - DONE_BASE]),
      queued: sum(this.queued),
      running: sum(this.running),
      blockedSubmitters: sum(this.blockedCount),
      waitTime: merge(this.waitSummary),
      runTime: merge(this.runSummary)
    })
  }

  stats(): AgendaStats {
    return new AgendaStats({
      name: this.config.name,
      state: this.lifecycle,
      byPriority: { High: this.levelStats([0]), Normal: this.levelStats([1]), Low: this.levelStats([2]) },
      total: this.levelStats([0, 1, 2]),
      workers: this.workers.map((w) => w.snapshot()),
      gcCycles: this.gcCycles,
      gcTimeouts: this.gcTimeouts,
      agingPicks: this.agingPicks
    })
  }

  toJSON(): AgendaStats {
    return this.stats()
  }

  /** Histogram metrics of this agenda, per level. */
  metrics() {
    return { waitTime: this.waitHistogram, runTime: this.runHistogram }
  }
}

/** Groups requests by collector so a collector shared by several requests runs once. */
const uniqueCollectors = (
  requests: ReadonlyArray<GcRequest>
): Array<[Effect.Effect<void, unknown>, Array<GcRequest>]> => {
  const groups = new Map<Effect.Effect<void, unknown>, Array<GcRequest>>()
  for (const r of requests) {
    const group = groups.get(r.collector)
    if (group === undefined) groups.set(r.collector, [r])
    else group.push(r)
  }
  return Array.from(groups)
}
