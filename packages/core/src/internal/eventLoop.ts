import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Agenda from "../Agenda.js"
import { InvalidOptions } from "../AgendaError.js"
import * as Event from "../Event.js"
import type * as EventLoop from "../EventLoop.js"
import { Dump, LoopStats, Stopped } from "../EventLoop.js"
import { HandlerConflict, LoopStopped, TooManyHandlers } from "../EventLoopError.js"
import * as Platform from "../Platform.js"
import type { Priority } from "../Priority.js"
import * as Timeouts from "../Timeouts.js"
import { decodeDuration } from "./agenda.js"
import { RingQueue } from "./ringQueue.js"
import { Summary } from "./summary.js"
import { runSync } from "./syncEffect.js"

interface Handler {
  readonly id: number
  readonly explanation: string
  readonly kind: Event.Kind
  /** The narrowing value (fd, signal, timer id, byte, pid), or undefined for every event of the kind. */
  readonly key: string | number | undefined
  readonly run: "inline" | Priority
  readonly handle: (event: any) => Effect.Effect<void, unknown>
  readonly builtin: boolean
  calls: number
  failures: number
}

const DEFAULT_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"]

const zeroPerKind = () => ({ FdReady: 0, Signal: 0, TimerFired: 0, Command: 0, ChildExit: 0 })

const keyOf = (event: Event.Event): string | number => {
  switch (event._tag) {
    case "FdReady":
      return event.fd
    case "Signal":
      return event.signal
    case "TimerFired":
      return event.id
    case "Command":
      return event.byte
    case "ChildExit":
      return event.pid
  }
}

const describeMatch = (kind: Event.Kind, key: string | number | undefined): string => {
  if (key === undefined) return `${kind} (any)`
  switch (kind) {
    case "FdReady":
      return `FdReady fd ${key}`
    case "Signal":
      return `Signal ${key}`
    case "TimerFired":
      return `TimerFired #${key}`
    case "Command":
      return `Command ${Event.describeByte(key as number)}`
    case "ChildExit":
      return `ChildExit pid ${key}`
  }
}

/** Validates a match and returns its kind and key, or the typed error. */
const normalizeMatch = (match: EventLoop.Match, explanation: string): [Event.Kind, string | number | undefined] | InvalidOptions => {
  const bad = (expected: string, value: unknown) =>
    new InvalidOptions({ option: `match (handler "${explanation}")`, value, expected })
  switch (match?._tag) {
    case "FdReady":
      if (match.fd !== undefined && !(Number.isInteger(match.fd) && match.fd >= 0)) {
        return bad("a non-negative integer fd", match.fd)
      }
      return ["FdReady", match.fd]
    case "Signal":
      if (match.signal !== undefined && !Platform.isClaimableSignal(match.signal)) {
        return bad("a claimable signal name such as \"SIGUSR1\" or \"SIGRTMIN+2\"", match.signal)
      }
      return ["Signal", match.signal]
    case "TimerFired":
      return ["TimerFired", match.id]
    case "Command": {
      const byte = typeof match.byte === "string"
        ? (match.byte.length === 1 ? match.byte.charCodeAt(0) : -1)
        : match.byte
      if (byte !== undefined && !(Number.isInteger(byte) && byte >= 0 && byte <= 255)) {
        return bad("a byte 0..255 or a one-character string", match.byte)
      }
      return ["Command", byte]
    }
    case "ChildExit":
      return ["ChildExit", match.pid]
    default:
      return bad(`{ _tag: one of ${Event.kinds.join(", ")} }`, match)
  }
}

const toByte = (command: number | string): number | undefined => {
  const byte = typeof command === "string" ? (command.length === 1 ? command.charCodeAt(0) : -1) : command
  return Number.isInteger(byte) && byte >= 0 && byte <= 255 ? byte : undefined
}


const dispatchHistogram = Metric.histogram(
  "refpersys_loop_dispatch_ms",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 28 }),
  "time from an event's arrival to its dispatch"
)

const NO_TAGS: ReadonlyArray<never> = []

interface Config {
  readonly capacity: number
  readonly overflow: "backpressure" | "dropNewest" | "dropOldest"
  readonly maxHandlers: number
  readonly batchSize: number
  readonly signals: ReadonlyArray<string>
  readonly defaultBindings: boolean
  readonly quitTimeout: Duration.Duration | undefined
}

const positiveInt = (option: string, value: unknown, fallback: number): number | InvalidOptions => {
  const v = value ?? fallback
  return typeof v === "number" && Number.isInteger(v) && v >= 1
    ? v
    : new InvalidOptions({ option, value, expected: "a positive integer" })
}

const resolveConfig = (options: EventLoop.Options): Config | InvalidOptions => {
  const capacity = positiveInt("capacity", options.capacity, 4096)
  if (capacity instanceof InvalidOptions) return capacity
  const maxHandlers = positiveInt("maxHandlers", options.maxHandlers, 128)
  if (maxHandlers instanceof InvalidOptions) return maxHandlers
  const batchSize = positiveInt("batchSize", options.batchSize, 64)
  if (batchSize instanceof InvalidOptions) return batchSize
  const overflow = options.overflow ?? "backpressure"
  if (overflow !== "backpressure" && overflow !== "dropNewest" && overflow !== "dropOldest") {
    return new InvalidOptions({ option: "overflow", value: overflow, expected: `"backpressure", "dropNewest" or "dropOldest"` })
  }
  const signals = options.signals ?? DEFAULT_SIGNALS
  for (const s of signals) {
    if (!Platform.isClaimableSignal(s)) {
      return new InvalidOptions({ option: "signals", value: s, expected: "claimable signal names such as \"SIGUSR1\"" })
    }
  }
  let quitTimeout: Config["quitTimeout"] = undefined
  if (options.quitTimeout !== undefined) {
    quitTimeout = decodeDuration(options.quitTimeout)
    if (quitTimeout === undefined) {
      return new InvalidOptions({ option: "quitTimeout", value: options.quitTimeout, expected: "a Duration such as \"10 seconds\"" })
    }
  }
  return { capacity, overflow, maxHandlers, batchSize, signals, defaultBindings: options.defaultBindings ?? true, quitTimeout }
}

/** @internal */
export const make = (
  options: EventLoop.Options
): Effect.Effect<EventLoop.EventLoop, InvalidOptions | Platform.PlatformError, Platform.Platform | Agenda.Agenda | Scope.Scope> =>
  Effect.gen(function*() {
    const config = resolveConfig(options)
    if (config instanceof InvalidOptions) return yield* config
    const platform = yield* Platform.Platform
    const agenda = yield* Agenda.Agenda
    const clock = yield* Effect.clock
    const sources = yield* FiberSet.make<unknown, unknown>()
    const workers = yield* FiberSet.make<unknown, unknown>()
    const stopped = yield* Deferred.make<Stopped>()
    const impl = new LoopImpl(config, platform, agenda, clock, stopped)
    // Timer firings join the event queue like any other event.
    impl.timeouts = yield* Timeouts.make({
      onFire: (event, action) => impl.offer(event, action)
    })
    impl.forkWork = (effect) => FiberSet.run(workers, effect).pipe(Effect.asVoid)
    impl.stopSources = FiberSet.clear(sources)

    const signals = yield* platform.signals(config.signals)
    // Built without validation (the second argument): the platform hands over
    // signal names and bytes it has checked, and validating a Command cost
    // 7 µs, more than the rest of its way to the handler.
    yield* FiberSet.run(sources, Stream.runForEach(signals, (signal) => impl.offer(new Event.Signal({ signal, at: impl.now() }, true))))
    yield* FiberSet.run(
      sources,
      Stream.runForEach(platform.commands.received, (byte) => impl.offer(new Event.Command({ byte, at: impl.now() }, true)))
    )
    yield* FiberSet.run(
      sources,
      Stream.runForEach(platform.childExits, (c) =>
        impl.offer(new Event.ChildExit({ pid: c.pid, code: c.code, signal: c.signal, at: impl.now() })))
    )
    if (config.defaultBindings) impl.installDefaults()
    yield* Effect.forkScoped(impl.loop)
    // Closing the loop's scope is a clean shutdown: the agenda drains (bounded
    // by quitTimeout, else 30 seconds) rather than losing queued work.
    yield* Effect.addFinalizer(() =>
      impl.state === "stopped" ? Effect.void : Effect.flatMap(
        agenda.quit({ timeout: config.quitTimeout ?? Duration.seconds(30) }),
        (report) => impl.stop("quit", "scope closed", report)
      )
    )
    return impl.service()
  })

class LoopImpl {
  state: "running" | "quitting" | "stopped" = "running"
  readonly queue = new RingQueue<Event.Event>(256)
  /** Actions of timer firings, carried next to their event. */
  readonly actions = new Map<Event.Event, Effect.Effect<void, unknown>>()
  /** Readiness events whose watch waits until they are handled (or dropped) to poll its fd again. */
  readonly inFlight = new Map<Event.Event, () => void>()
  readonly byKind = new Map<Event.Kind, { any: Array<Handler>; keyed: Map<string | number, Array<Handler>> }>()
  readonly handlers = new Map<number, Handler>()
  userHandlers = 0
  nextHandlerId = 1
  loopWake: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  blocked: Array<(effect: Effect.Effect<void>) => void> = []
  timeouts!: Timeouts.Timeouts
  forkWork!: (effect: Effect.Effect<void>) => Effect.Effect<void>
  stopSources!: Effect.Effect<void>
  // counters
  iterations = 0
  readonly events = zeroPerKind()
  readonly unhandled = zeroPerKind()
  readonly signalCounts: Record<string, number> = {}
  unknownCommands = 0
  handlerCalls = 0
  handlerFailures = 0
  overflow = 0
  backpressureWaits = 0
  discardedAtStop = 0
  readonly latency = new Summary()
  readonly now: () => number

  constructor(
    readonly config: Config,
    readonly platform: Platform.Platform,
    readonly agenda: Agenda.Agenda,
    readonly clock: Clock.Clock,
    readonly stopped: Deferred.Deferred<Stopped>
  ) {
    this.now = () => clock.unsafeCurrentTimeMillis()
    for (const kind of Event.kinds) this.byKind.set(kind, { any: [], keyed: new Map() })
  }

  // ---- the queue ---------------------------------------------------------

  /** Puts an event in the queue per the overflow policy; waits only under backpressure. */
  offer(event: Event.Event, action?: Effect.Effect<void, unknown>): Effect.Effect<void> {
    return Effect.suspend(() => this.offerNow(event, action))
  }

  /** `offer`'s body, for callers already inside a suspended step. */
  private offerNow(event: Event.Event, action?: Effect.Effect<void, unknown>): Effect.Effect<void> {
    if (this.tryOffer(event, action)) return Effect.void
    this.backpressureWaits++
    return Effect.flatMap(
      Effect.async<void>((resume) => {
        this.blocked.push(resume)
        return Effect.sync(() => {
          const i = this.blocked.indexOf(resume)
          if (i >= 0) this.blocked.splice(i, 1)
        })
      }),
      () => this.offer(event, action)
    )
  }

  private tryOffer(event: Event.Event, action: Effect.Effect<void, unknown> | undefined): boolean {
    if (this.state === "stopped") {
      this.discardedAtStop++
      this.release(event)
      return true
    }
    if (this.queue.length >= this.config.capacity) {
      if (this.config.overflow === "backpressure") return false
      this.overflow++
      if (this.config.overflow === "dropNewest") {
        this.release(event)
        return true
      }
      const oldest = this.queue.shift()!
      this.actions.delete(oldest)
      this.release(oldest)
    }
    this.queue.push(event)
    if (action !== undefined) this.actions.set(event, action)
    const wake = this.loopWake
    if (wake !== undefined) {
      this.loopWake = undefined
      wake(Effect.void)
    }
    return true
  }

  /**
   * Offers a readiness report of a watch and waits until the handlers are done
   * with it (an inline handler returned, a submitted handler's tasklet ended)
   * or it was dropped; only then does the watch poll its fd again. With one
   * report in flight per fd, a handler that has not read yet gets no duplicate
   * reports, and a handler may close its fd: the platform sees it closed
   * before polling it again.
   */
  offerReadiness(event: Event.FdReady): Effect.Effect<void> {
    return Effect.flatMap(Deferred.make<void>(), (handled) => {
      this.inFlight.set(event, () => Deferred.unsafeDone(handled, Exit.void))
      return Effect.zipRight(this.offer(event), Deferred.await(handled)).pipe(
        Effect.ensuring(Effect.sync(() => this.inFlight.delete(event)))
      )
    })
  }

  /** Lets the watch of a readiness event go on (see `offerReadiness`). */
  private release(event: Event.Event): void {
    const done = this.inFlight.get(event)
    if (done === undefined) return
    this.inFlight.delete(event)
    done()
  }

  private readonly waitForEvents: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.queue.length > 0 || this.state === "stopped") return resume(Effect.void)
    this.loopWake = resume
    return Effect.sync(() => {
      this.loopWake = undefined
    })
  })

  readonly loop: Effect.Effect<void> = Effect.suspend((): Effect.Effect<void> => {
    if (this.state === "stopped") return Effect.void
    if (this.queue.length === 0) return Effect.zipRight(this.waitForEvents, this.loop)
    const batch: Array<Event.Event> = []
    while (batch.length < this.config.batchSize && this.queue.length > 0) batch.push(this.queue.shift()!)
    this.iterations++
    const blocked = this.blocked
    if (blocked.length > 0) {
      this.blocked = []
      for (const resume of blocked) resume(Effect.void)
    }
    return this.dispatchFrom(batch, 0)
  })

  /**
   * Dispatches the batch from index `i` on, then loops. Events with nothing
   * to run take no step at all; `Effect.forEach` cost a step and a few
   * allocations per event more.
   */
  private dispatchFrom(batch: Array<Event.Event>, i: number): Effect.Effect<void> {
    // One clock reading per stretch of synchronous dispatches (events are
    // stamped in whole milliseconds anyway); read again after a handler that
    // took fiber steps.
    this.dispatchNow = this.now()
    while (i < batch.length) {
      const effect = this.dispatch(batch[i++])
      if (effect !== Effect.void) return Effect.flatMap(effect, () => this.dispatchFrom(batch, i))
    }
    return this.loop
  }

  /** The clock as read by `dispatchFrom`, for the dispatch latency. */
  private dispatchNow = 0

  // ---- dispatch ----------------------------------------------------------

  private dispatch(event: Event.Event): Effect.Effect<void> {
    if (this.state === "stopped") {
      this.discardedAtStop++
      this.release(event)
      return Effect.void
    }
    const kind = event._tag
    this.events[kind]++
    const latency = this.dispatchNow - event.at
    this.latency.add(latency)
    dispatchHistogram.unsafeUpdate(latency, NO_TAGS)
    if (kind === "Signal") this.signalCounts[event.signal] = (this.signalCounts[event.signal] ?? 0) + 1
    const action = this.actions.size === 0 ? undefined : this.actions.get(event)
    if (action !== undefined) this.actions.delete(event)
    const entry = this.byKind.get(kind)!
    const keyed = entry.keyed.get(keyOf(event))
    const matched = keyed === undefined ? entry.any : entry.any.length === 0 ? keyed : [...keyed, ...entry.any]
    if (matched.length === 0 && action === undefined) {
      this.release(event)
      this.unhandled[kind]++
      if (kind === "Command") {
        this.unknownCommands++
        return Effect.logWarning(
          `unknown command byte ${Event.describeByte(event.byte)} ignored (${this.unknownCommands} so far); bind it with EventLoop.register({ match: { _tag: "Command", byte: ${event.byte} } })`
        )
      }
      return Effect.void
    }
    const effects: Array<Effect.Effect<void>> = []
    if (action !== undefined) {
      effects.push(Effect.catchAllCause(action, (cause) => this.logFailure(`timeout ${(event as Event.TimerFired).label}`, kind, cause)))
    }
    let onDone: (() => void) | undefined = undefined
    if (this.inFlight.size > 0 && this.inFlight.has(event)) {
      let pending = matched.length
      onDone = () => {
        if (--pending === 0) this.release(event)
      }
    }
    if (effects.length === 0 && matched.length === 1 && onDone === undefined && matched[0].run === "inline") {
      return this.runInline(matched[0], event)
    }
    for (const handler of matched) effects.push(this.runHandler(handler, event, onDone))
    return effects.length === 1 ? effects[0] : Effect.all(effects, { discard: true })
  }

  /**
   * The common case, one inline handler: called right away rather than inside
   * an `Effect.suspend` (a step and two allocations per event). A throw from
   * `handle` itself is a defect, as `suspend` would make it.
   */
  private runInline(handler: Handler, event: Event.Event): Effect.Effect<void> {
    handler.calls++
    this.handlerCalls++
    const failed = (cause: Cause.Cause<unknown>) => {
      handler.failures++
      return this.logFailure(handler.explanation, event._tag, cause)
    }
    let effect: Effect.Effect<void, unknown>
    try {
      effect = handler.handle(event)
    } catch (error) {
      return failed(Cause.die(error))
    }
    // A synchronous handler runs right here: a batch of them takes one step.
    const exit = runSync(effect)
    if (exit === undefined) return Effect.catchAllCause(effect, failed)
    return exit._tag === "Success" ? Effect.void : failed(exit.cause)
  }

  /** Runs or submits one handler; `onDone` is called once the handler is done with the event. */
  private runHandler(handler: Handler, event: Event.Event, onDone?: () => void): Effect.Effect<void> {
    handler.calls++
    this.handlerCalls++
    if (handler.run === "inline") {
      const run = Effect.catchAllCause(Effect.suspend(() => handler.handle(event)), (cause) => {
        handler.failures++
        return this.logFailure(handler.explanation, event._tag, cause)
      })
      return onDone === undefined ? run : Effect.ensuring(run, Effect.sync(onDone))
    }
    // Submitted as a tasklet: the agenda logs and counts its failures under
    // the handler's explanation; here only a refused submission counts.
    return Effect.matchEffect(
      this.agenda.submit(Effect.suspend(() => handler.handle(event)), {
        priority: handler.run,
        label: handler.explanation
      }),
      {
        onSuccess: (handle) => {
          if (onDone !== undefined) handle.unsafeAddObserver(onDone)
          return Effect.void
        },
        onFailure: (error) => {
          onDone?.()
          handler.failures++
          this.handlerFailures++
          return Effect.logDebug(`handler "${handler.explanation}" not submitted: ${error.message}`)
        }
      }
    )
  }

  private logFailure(explanation: string, kind: Event.Kind, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    this.handlerFailures++
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    return Effect.logWarning(`handler "${explanation}" failed on a ${kind} event; the loop goes on`, cause)
  }

  // ---- handlers ----------------------------------------------------------

  addHandler(
    options: EventLoop.HandlerOptions<any, any>,
    builtin: boolean
  ): Handler | TooManyHandlers | HandlerConflict | InvalidOptions | LoopStopped {
    if (this.state === "stopped") return new LoopStopped({ operation: "register" })
    if (typeof options.explanation !== "string" || options.explanation.length === 0) {
      return new InvalidOptions({ option: "explanation", value: options.explanation, expected: "a non-empty string saying why the handler exists" })
    }
    const run = options.run ?? "inline"
    if (run !== "inline" && run !== "High" && run !== "Normal" && run !== "Low") {
      return new InvalidOptions({ option: "run", value: run, expected: `"inline", "High", "Normal" or "Low"` })
    }
    const normalized = normalizeMatch(options.match, options.explanation)
    if (normalized instanceof InvalidOptions) return normalized
    const [kind, key] = normalized
    if (!builtin && this.userHandlers >= this.config.maxHandlers) {
      return new TooManyHandlers({ limit: this.config.maxHandlers, explanation: options.explanation })
    }
    const entry = this.byKind.get(kind)!
    if (kind === "FdReady" && key !== undefined) {
      const existing = entry.keyed.get(key)
      if (existing !== undefined && existing.length > 0) {
        return new HandlerConflict({ fd: key as number, existing: existing[0].explanation, explanation: options.explanation })
      }
    }
    const handler: Handler = {
      id: this.nextHandlerId++,
      explanation: options.explanation,
      kind,
      key,
      run,
      handle: options.handle,
      builtin,
      calls: 0,
      failures: 0
    }
    if (key === undefined) entry.any = [...entry.any, handler]
    else entry.keyed.set(key, [...(entry.keyed.get(key) ?? []), handler])
    this.handlers.set(handler.id, handler)
    if (!builtin) this.userHandlers++
    return handler
  }

  removeHandler(handler: Handler): void {
    if (!this.handlers.delete(handler.id)) return
    if (!handler.builtin) this.userHandlers--
    const entry = this.byKind.get(handler.kind)!
    // Copy-on-write so a dispatch in progress keeps its list intact.
    if (handler.key === undefined) entry.any = entry.any.filter((h) => h !== handler)
    else {
      const rest = (entry.keyed.get(handler.key) ?? []).filter((h) => h !== handler)
      if (rest.length === 0) entry.keyed.delete(handler.key)
      else entry.keyed.set(handler.key, rest)
    }
  }

  info(handler: Handler) {
    return {
      id: handler.id,
      explanation: handler.explanation,
      match: describeMatch(handler.kind, handler.key),
      run: handler.run,
      builtin: handler.builtin,
      calls: handler.calls,
      failures: handler.failures
    }
  }

  installDefaults(): void {
    const builtin = (explanation: string, match: EventLoop.Match, handle: (event: any) => Effect.Effect<void>) => {
      const added = this.addHandler({ explanation, match, handle }, true)
      if (!("id" in added)) throw new Error(`default binding "${explanation}" could not be installed: ${added.message}`)
    }
    builtin("default: D dumps the runtime state", { _tag: "Command", byte: "D" }, () => this.logDump("command D"))
    builtin("default: G runs a garbage-collection barrier on the agenda", { _tag: "Command", byte: "G" }, () =>
      this.gc("command G"))
    builtin("default: Q quits (drain the agenda, then stop)", { _tag: "Command", byte: "Q" }, () =>
      this.quit("command Q"))
    builtin("default: X exits now (interrupt running tasklets, drop queued ones)", { _tag: "Command", byte: "X" }, () =>
      this.exit("command X"))
    const claimed = new Set(this.config.signals)
    if (claimed.has("SIGINT")) {
      builtin("default: SIGINT quits; a second SIGINT while quitting exits", { _tag: "Signal", signal: "SIGINT" }, () =>
        this.state === "quitting" ? this.exit("second SIGINT") : this.quit("SIGINT"))
    }
    if (claimed.has("SIGTERM")) {
      builtin("default: SIGTERM quits", { _tag: "Signal", signal: "SIGTERM" }, () => this.quit("SIGTERM"))
    }
    if (claimed.has("SIGUSR1")) {
      builtin("default: SIGUSR1 dumps the runtime state", { _tag: "Signal", signal: "SIGUSR1" }, () =>
        this.logDump("SIGUSR1"))
    }
  }

  // ---- commands ----------------------------------------------------------

  private gc(cause: string): Effect.Effect<void> {
    // The barrier waits for every worker to park; run it beside the loop so
    // events keep flowing meanwhile.
    return this.forkWork(Effect.gen(this, function*() {
      const start = this.now()
      const collect = Effect.sync(() => {
        const gc = (globalThis as { gc?: () => void }).gc
        if (gc !== undefined) gc()
      })
      const exit = yield* Effect.exit(this.agenda.requestGc(collect))
      yield* exit._tag === "Success"
        ? Effect.logInfo(`GC barrier (${cause}) done in ${(this.now() - start).toFixed(1)} ms`)
        : Effect.logWarning(`GC barrier (${cause}) failed`, exit.cause)
    }))
  }

  private logDump(cause: string): Effect.Effect<void> {
    return Effect.flatMap(this.dump, (dump) => Effect.logInfo(`dump (${cause})`, dump))
  }

  quit(cause: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.state !== "running") return Effect.void
      this.state = "quitting"
      const timeout = this.config.quitTimeout
      return this.forkWork(Effect.flatMap(
        this.agenda.quit(timeout === undefined ? undefined : { timeout }),
        (report) => this.stop("quit", cause, report)
      ))
    })
  }

  exit(cause: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.state === "stopped") return Effect.void
      this.state = "quitting"
      return this.forkWork(Effect.flatMap(this.agenda.exit, (report) => this.stop("exit", cause, report)))
    })
  }

  /** Stops the sources and the loop and publishes why; only the first call counts. */
  stop(reason: "quit" | "exit", cause: string, report: import("../AgendaStats.js").ShutdownReport | undefined): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.state === "stopped") return Effect.void
      this.state = "stopped"
      this.discardedAtStop += this.queue.length
      for (const event of this.queue.drain()) this.release(event)
      this.actions.clear()
      const wake = this.loopWake
      this.loopWake = undefined
      wake?.(Effect.void)
      for (const resume of this.blocked) resume(Effect.void)
      this.blocked = []
      return Effect.gen(this, function*() {
        const agendaReport = report ?? (yield* this.agenda.exit)
        yield* Deferred.succeed(this.stopped, new Stopped({ reason, cause, agenda: agendaReport, loop: this.stats() }))
        yield* this.stopSources
      }).pipe(Effect.uninterruptible)
    })
  }

  // ---- snapshots -------------------------------------------------------

  stats(): LoopStats {
    return new LoopStats({
      state: this.state,
      iterations: this.iterations,
      events: { ...this.events },
      unhandled: { ...this.unhandled },
      signals: { ...this.signalCounts },
      unknownCommands: this.unknownCommands,
      handlerCalls: this.handlerCalls,
      handlerFailures: this.handlerFailures,
      overflow: this.overflow,
      backpressureWaits: this.backpressureWaits,
      discardedAtStop: this.discardedAtStop,
      queued: this.queue.length,
      dispatchLatency: this.latency.toJSON()
    })
  }

  readonly dump: Effect.Effect<Dump> = Effect.gen(this, function*() {
    const timeouts = yield* this.timeouts.pending
    const agenda = yield* this.agenda.stats
    return new Dump({
      at: this.now(),
      platform: { ...this.platform.info },
      loop: this.stats(),
      handlers: Array.from(this.handlers.values(), (h) => this.info(h)),
      timeouts,
      agenda
    })
  })

  service(): EventLoop.EventLoop {
    const register = <M extends EventLoop.Match, E>(options: EventLoop.HandlerOptions<M, E>) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          const added = this.addHandler(options, false)
          return "calls" in added ? Effect.succeed(added) : Effect.fail(added)
        }),
        (handler) => Effect.sync(() => this.removeHandler(handler))
      ).pipe(Effect.map((handler) => this.info(handler)))
    return {
      register,
      // In a scope of its own, closed at once if a step fails: a refused watch
      // leaves no handler registered (a retry would meet a HandlerConflict).
      watchFd: (fd, interest, options) =>
        Effect.flatMap(Effect.scope, (outer) =>
          Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (scope) =>
            Effect.gen(this, function*() {
              yield* register({ ...options, match: { _tag: "FdReady" as const, fd } })
              const readiness = yield* this.platform.watch(fd, interest)
              yield* Effect.forkScoped(Stream.runForEach(readiness, (r) =>
                this.offerReadiness(
                  new Event.FdReady({ fd, read: r.read, write: r.write, hup: r.hup, error: r.error, at: this.now() })
                )))
            }).pipe(
              Scope.extend(scope),
              Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
            ))),
      post: (event) =>
        Effect.suspend(() => this.state === "stopped" ? Effect.fail(new LoopStopped({ operation: "post" })) : this.offerNow(event)),
      send: (command) =>
        Effect.suspend((): Effect.Effect<void, Platform.PlatformError | InvalidOptions> => {
          const byte = toByte(command)
          return byte === undefined
            ? Effect.fail(new InvalidOptions({ option: "command", value: command, expected: "a byte 0..255 or a one-character string" }))
            : this.platform.commands.send(byte)
        }),
      timeouts: this.timeouts,
      stats: Effect.sync(() => this.stats()),
      dump: this.dump,
      quit: this.quit("quit()"),
      exit: this.exit("exit()"),
      awaitStop: Deferred.await(this.stopped)
    }
  }
}
