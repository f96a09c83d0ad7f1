import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaParser from "effect/SchemaParser"
import * as SchemaTransformation from "effect/SchemaTransformation"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Agenda from "../Agenda.js"
import { InvalidOptions } from "../AgendaError.js"
import * as Event from "../Event.js"
import type * as EventLoop from "../EventLoop.js"
import { Dump, LoopStats, Stopped } from "../EventLoop.js"
import { ShutdownReport } from "../AgendaStats.js"
import {
  HandlerConflict,
  InvalidEvent,
  InvalidHandlerResult,
  LoopFailed,
  LoopStopped,
  TooManyHandlers
} from "../EventLoopError.js"
import * as Options_ from "../Options.js"
import * as Platform from "../Platform.js"
import type { Priority } from "../Priority.js"
import * as Timeouts from "../Timeouts.js"
import * as issues from "./issues.js"
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

// ---- option schemas ------------------------------------------------------
//
// One schema per option set (loop options, a registration, a watch), shared
// by every entry point, so a bad value always meets the same check and the
// same message. `expected` texts become `InvalidOptions.expected`.

/**
 * An option value checked by `ok`; every failure of it reads `expected`.
 * Built from `unknown`, so a wrong type and a wrong value get the same text.
 */
const expecting = <A>(expected: string, ok: (u: unknown) => u is A): Schema.Codec<A> =>
  Schema.Unknown.pipe(
    Schema.decodeTo(
      Schema.declare(ok),
      SchemaTransformation.transformEffect<A, unknown>({
        decode: (u) => ok(u) ? Effect.succeed(u) : Effect.fail(issues.invalid(u, expected)),
        encode: (a) => Effect.succeed(a)
      })
    )
  ) as unknown as Schema.Codec<A>

const integer = (expected: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  expecting(expected, (n): n is number => typeof n === "number" && Number.isInteger(n) && n >= min && n <= max)

const oneOf = <const L extends ReadonlyArray<string>>(literals: L, expected: string) =>
  expecting(expected, (u): u is L[number] => typeof u === "string" && literals.includes(u))

/** A required field: its absence reads `expected` too. */
const required = <S extends Schema.Top>(schema: S, expected: string): S["Rebuild"] =>
  Schema.annotateKey<S>({ messageMissingKey: `${expected} (it is missing)` })(schema)

const signalName = expecting(
  "a claimable signal name such as \"SIGUSR1\" or \"SIGRTMIN+2\" (not SIGKILL or SIGSTOP)",
  (s): s is string => typeof s === "string" && Platform.isClaimableSignal(s)
)

const MATCH_EXPECTED = `{ _tag: one of ${Event.kinds.join(", ")} } with an optional fd, signal, id, byte or pid`

const MatchSchema = Schema.Union([
  Schema.Struct({ _tag: Schema.Literal("FdReady"), fd: Schema.optional(integer("an fd, a non-negative integer", 0)) }),
  Schema.Struct({ _tag: Schema.Literal("Signal"), signal: Schema.optional(signalName) }),
  Schema.Struct({
    _tag: Schema.Literal("TimerFired"),
    id: Schema.optional(integer("a timeout id, a positive integer (the id of a handle from loop.timeouts)", 1))
  }),
  Schema.Struct({
    _tag: Schema.Literal("Command"),
    byte: Schema.optional(expecting(
      "a byte 0..255 or a one-character string",
      (u): u is number | string =>
        (typeof u === "number" && Number.isInteger(u) && u >= 0 && u <= 255) || (typeof u === "string" && u.length === 1)
    ))
  }),
  Schema.Struct({ _tag: Schema.Literal("ChildExit"), pid: Schema.optional(integer("a child pid, a positive integer", 1)) })
]).annotate({ message: MATCH_EXPECTED })

const HANDLE_EXPECTED = "a function from the event to an Effect, e.g. (e) => Effect.log(e)"
const EXPLANATION_EXPECTED = "a non-empty string saying why the handler exists"

const handlerFields = {
  explanation: required(
    expecting(EXPLANATION_EXPECTED, (u): u is string => typeof u === "string" && u.length > 0),
    EXPLANATION_EXPECTED
  ),
  handle: required(
    expecting(HANDLE_EXPECTED, (u): u is (event: any) => Effect.Effect<void, unknown> => typeof u === "function"),
    HANDLE_EXPECTED
  ),
  run: Schema.optional(oneOf(["inline", "High", "Normal", "Low"], `"inline", "High", "Normal" or "Low"`))
}

const anObject = (what: string) => ({ message: `an object ${what}` })

/** A registration: `EventLoop.register`'s options, also the defaults'. */
const HandlerSpec = Schema.Struct({
  ...handlerFields,
  match: required(MatchSchema, MATCH_EXPECTED)
}).annotate(anObject("{ explanation, match, handle, run? }"))

const aBoolean = expecting("true or false", (u): u is boolean => typeof u === "boolean")

/** A watch: `EventLoop.watchFd`'s three arguments. */
const WatchSpec = Schema.Struct({
  fd: integer("an fd, a non-negative integer", 0),
  interest: required(
    Schema.Struct({ read: Schema.optional(aBoolean), write: Schema.optional(aBoolean) })
      .annotate(anObject("{ read?: boolean, write?: boolean }")),
    "{ read?: boolean, write?: boolean }"
  ),
  options: required(Schema.Struct(handlerFields).annotate(anObject("{ explanation, handle, run? }")), "{ explanation, handle, run? }")
})

const positive = (what: string) => Schema.optional(integer(`a positive integer (${what})`, 1))

/** `EventLoop.make`'s options. */
const OptionsSpec = Schema.Struct({
  capacity: positive("events the queue holds"),
  overflow: Schema.optional(
    oneOf(["backpressure", "dropNewest", "dropOldest"], `"backpressure", "dropNewest" or "dropOldest"`)
  ),
  maxHandlers: positive("most user handlers"),
  batchSize: positive("most events per iteration"),
  signals: Schema.optional(Schema.Array(signalName)),
  defaultBindings: Schema.optional(aBoolean),
  quitTimeout: Schema.optional(Options_.Duration),
  unknownCommandWarnings: Schema.optional(integer("a non-negative integer (warnings per second)", 0))
}).annotate(anObject("of EventLoop options"))

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let value = input
  for (const key of path) value = typeof value === "object" && value !== null ? (value as any)[key] : undefined
  return value
}

/** The issue a failed decode's `Exit` carries (a decode fails, it does not die). */
const issueOf = (cause: Cause.Cause<SchemaIssue.Issue>): SchemaIssue.Issue | undefined => {
  const reason = cause.reasons.find(Cause.isFailReason)
  return reason?.error
}

/**
 * A decoder from `schema` whose failure is an `InvalidOptions` naming the
 * entry point and the option's path (`register match.pid (handler "x")`).
 */
const optionsDecoder = <A, I>(schema: Schema.Codec<A, I>, entry: string) => {
  const decode = SchemaParser.decodeUnknownExit(schema)
  return (input: unknown, context = ""): A | InvalidOptions => {
    const result = decode(input, { errors: "first", onExcessProperty: "ignore" })
    if (Exit.isSuccess(result)) return result.value
    const issue = issueOf(result.cause)
    if (issue === undefined) {
      return new InvalidOptions({ option: `${entry} options${context}`, value: input, expected: "valid options" })
    }
    const found = issues.first(issue)
    // A match whose `_tag` names no kind: the option at fault is its `_tag`.
    const tag = issues.atTag(found, valueAt(input, found.path))
    const path = tag?.path ?? found.path
    const name = path.map(String).join(".")
    const expected = issues.message(found.leaf)
    return new InvalidOptions({
      option: `${entry} ${name === "" ? "options" : name}${context}`,
      value: valueAt(input, path),
      expected: tag?.missing ? `${expected} (it is missing)` : expected
    })
  }
}

const decodeHandlerSpec = optionsDecoder(HandlerSpec, "register")
const decodeWatchSpec = optionsDecoder(WatchSpec, "watchFd")
const decodeOptions = optionsDecoder(OptionsSpec, "EventLoop")

const describeHandler = (options: unknown): string => {
  const explanation = typeof options === "object" && options !== null ? (options as { explanation?: unknown }).explanation : undefined
  return typeof explanation === "string" && explanation.length > 0 ? ` (handler "${explanation}")` : ""
}

/** The kind and key of a decoded match (a one-character byte becomes its code). */
const matchKey = (match: typeof MatchSchema.Type): [Event.Kind, string | number | undefined] => {
  switch (match._tag) {
    case "FdReady":
      return ["FdReady", match.fd]
    case "Signal":
      return ["Signal", match.signal]
    case "TimerFired":
      return ["TimerFired", match.id]
    case "Command":
      return ["Command", typeof match.byte === "string" ? match.byte.charCodeAt(0) : match.byte]
    case "ChildExit":
      return ["ChildExit", match.pid]
  }
}

const toByte = (command: number | string): number | undefined => {
  const byte = typeof command === "string" ? (command.length === 1 ? command.charCodeAt(0) : -1) : command
  return Number.isInteger(byte) && byte >= 0 && byte <= 255 ? byte : undefined
}

// ---- events posted by users --------------------------------------------

const decodeEvent = SchemaParser.decodeUnknownExit(Event.Event)

/**
 * A posted value as an event, or why not. Instances of the event classes
 * pass as they are (their constructor validated them; this keeps `post` as
 * fast as the platform's own sources); anything else is decoded by the
 * `Event` schema.
 */
const toEvent = (value: unknown): Event.Event | InvalidEvent => {
  if (
    value instanceof Event.Command || value instanceof Event.FdReady || value instanceof Event.Signal ||
    value instanceof Event.TimerFired || value instanceof Event.ChildExit
  ) return value
  const result = decodeEvent(value, { errors: "first" })
  if (Exit.isSuccess(result)) return result.value
  const issue = issueOf(result.cause)
  if (issue === undefined) return new InvalidEvent({ value, issue: "not an event" })
  const found = issues.first(issue)
  const tag = issues.atTag(found, valueAt(value, found.path))
  if (tag !== undefined) {
    const got = (value as { readonly _tag?: unknown })._tag
    return new InvalidEvent({
      value,
      issue: tag.missing ? "_tag: is missing" : `_tag: expected one of ${Event.kinds.join(", ")}, got ${JSON.stringify(got)}`
    })
  }
  const name = found.path.map(String).join(".")
  const text = issues.message(found.leaf)
  return new InvalidEvent({ value, issue: name === "" ? text : `${name}: ${text}` })
}

// ---- handler results ---------------------------------------------------

const describeResult = (result: unknown): string => {
  if (result === undefined || result === null) return String(result)
  if (typeof (result as { then?: unknown }).then === "function") return "a Promise"
  if (typeof result === "function") return "a function (return the Effect itself)"
  if (typeof result === "object") return "an object that is not an Effect"
  return `${typeof result} ${String(result)}`
}

const dispatchHistogram = Metric.histogram("refpersys_loop_dispatch_ms", {
  description: "time from an event's arrival to its dispatch",
  boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 28 })
})

/**
 * How long the loop waits, past a quit's own timeout, for the agenda (or its
 * own fiber) to end before it stops without it: an uninterruptible tasklet
 * or inline handler must not hold up a stop for ever.
 */
const STOP_GRACE = Duration.seconds(1)

/** Construction options for events whose fields were checked already. */
const UNCHECKED = { disableChecks: true } as const

/**
 * A wake-up for `fiber` suspended in `Effect.callback`: resumes it from its
 * own dispatcher, as a task of its own. Calling `resume` directly would run
 * the woken fiber inside the caller (a source offering an event would run
 * the loop's handlers on its own stack, the loop would run sources).
 */
const scheduled = (fiber: Fiber.Fiber<unknown, unknown>, resume: (effect: Effect.Effect<void>) => void) => {
  const task = () => resume(Effect.void)
  return (): void => fiber.currentDispatcher.scheduleTask(task, 0)
}

/** Default `unknownCommandWarnings`: unknown-byte warnings logged per second. */
const UNKNOWN_WARNINGS_PER_SECOND = 10

interface Config {
  readonly capacity: number
  readonly overflow: "backpressure" | "dropNewest" | "dropOldest"
  readonly maxHandlers: number
  readonly batchSize: number
  readonly signals: ReadonlyArray<string>
  readonly defaultBindings: boolean
  readonly quitTimeout: Duration.Duration | undefined
  readonly unknownCommandWarnings: number
}

const resolveConfig = (options: EventLoop.Options): Config | InvalidOptions => {
  const o = decodeOptions(options)
  if (o instanceof InvalidOptions) return o
  return {
    capacity: o.capacity ?? 4096,
    overflow: o.overflow ?? "backpressure",
    maxHandlers: o.maxHandlers ?? 128,
    batchSize: o.batchSize ?? 64,
    signals: o.signals ?? DEFAULT_SIGNALS,
    defaultBindings: o.defaultBindings ?? true,
    quitTimeout: o.quitTimeout,
    unknownCommandWarnings: o.unknownCommandWarnings ?? UNKNOWN_WARNINGS_PER_SECOND
  }
}

/**
 * Waits for `effect` at most `bound`. Interruptible even inside a finalizer
 * (which is uninterruptible), and detached: an effect that cannot be
 * interrupted (an uninterruptible tasklet) goes on alone rather than hold
 * up the wait.
 */
const within = <A>(effect: Effect.Effect<A>, bound: Duration.Duration): Effect.Effect<Option.Option<A>> =>
  detached(effect, (join) => Effect.timeoutOption(join, bound))

/**
 * Runs `effect` on a fiber of its own (interruptible, whatever the caller's
 * region) and waits for it through `wait`, interruptibly. When the wait ends
 * first (a timeout, an interruption), the fiber is interrupted and left to
 * end by itself.
 */
const detached = <A, B>(
  effect: Effect.Effect<A>,
  wait: (join: Effect.Effect<A>) => Effect.Effect<B>
): Effect.Effect<B> =>
  Effect.flatMap(Effect.forkDetach(effect), (fiber) =>
    wait(Effect.interruptible(Fiber.join(fiber))).pipe(
      Effect.ensuring(Effect.sync(() => fiber.interruptUnsafe()))
    ))

/** @internal */
export const make = (
  options: EventLoop.Options
): Effect.Effect<EventLoop.EventLoop, InvalidOptions | Platform.PlatformError, Platform.Platform | Agenda.Agenda | Scope.Scope> =>
  Effect.gen(function*() {
    const config = resolveConfig(options)
    if (config instanceof InvalidOptions) return yield* config
    const platform = yield* Platform.Platform
    const agenda = yield* Agenda.Agenda
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    const sources = yield* FiberSet.make<unknown, unknown>()
    const workers = yield* FiberSet.make<unknown, unknown>()
    const stopped = yield* Deferred.make<Stopped, LoopFailed>()
    const impl = new LoopImpl(config, platform, agenda, clock, context, stopped)
    // Timer firings join the event queue like any other event.
    impl.timeouts = yield* Timeouts.make({
      onFire: (event, action) => impl.offer(event, action)
    })
    impl.forkWork = (effect) => FiberSet.run(workers, effect).pipe(Effect.asVoid)
    impl.stopSources = FiberSet.clear(sources)

    const signals = yield* platform.signals(config.signals)
    // Built without checks: the platform hands over signal names and bytes it
    // has checked, and checking a Command cost more than the rest of its way
    // to the handler.
    yield* FiberSet.run(
      sources,
      Stream.runForEach(signals, (signal) => impl.offer(new Event.Signal({ signal, at: impl.now() }, UNCHECKED)))
    )
    yield* FiberSet.run(
      sources,
      Stream.runForEach(platform.commands.received, (byte) => impl.offer(new Event.Command({ byte, at: impl.now() }, UNCHECKED)))
    )
    yield* FiberSet.run(
      sources,
      Stream.runForEach(platform.childExits, (c) =>
        impl.offer(new Event.ChildExit({ pid: c.pid, code: c.code, signal: c.signal, at: impl.now() })))
    )
    if (config.defaultBindings) impl.installDefaults()
    // The loop fiber is supervised: a defect that escapes dispatch's own
    // isolation stops the loop visibly (see `failed`) instead of leaving it
    // dead behind a "running" state. Its stop is bounded: an inline handler
    // stuck uninterruptibly is left behind after STOP_GRACE.
    const loopFiber = yield* Effect.forkDetach(
      Effect.catchCause(impl.run, (cause) => impl.failed(cause))
    )
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Effect.andThen(Effect.sync(() => loopFiber.interruptUnsafe()), within(Fiber.await(loopFiber), STOP_GRACE)), (ended) =>
        Option.isSome(ended) ? Effect.void : Effect.logWarning(
          `the event loop fiber did not end within ${Duration.format(STOP_GRACE)} of the stop${impl.describeRunning()}; it is left behind`
        ))
    )
    // Closing the loop's scope is a clean shutdown: the agenda drains (bounded
    // by quitTimeout, else 30 seconds) rather than losing queued work. The
    // wait is bounded even though finalizers are uninterruptible (see `within`).
    yield* Effect.addFinalizer(() =>
      impl.state === "running" || impl.state === "quitting"
        ? Effect.flatMap(impl.boundedQuit(config.quitTimeout ?? Duration.seconds(30)), (report) =>
          impl.exitCause === undefined ? impl.stop("quit", "scope closed", report) : impl.stop("exit", impl.exitCause, report))
        : Effect.void
    )
    return impl.service()
  })

class LoopImpl {
  state: "running" | "quitting" | "stopped" | "failed" = "running"
  readonly queue = new RingQueue<Event.Event>(256)
  /** Actions of timer firings, carried next to their event. */
  readonly actions = new Map<Event.Event, Effect.Effect<void, unknown>>()
  /** Readiness events whose watch waits until they are handled (or dropped) to poll its fd again. */
  readonly inFlight = new Map<Event.Event, () => void>()
  readonly byKind = new Map<Event.Kind, { any: Array<Handler>; keyed: Map<string | number, Array<Handler>> }>()
  readonly handlers = new Map<number, Handler>()
  userHandlers = 0
  nextHandlerId = 1
  /** Wakes the loop fiber when it waits for events (see `waitForEvents`). */
  loopWake: (() => void) | undefined = undefined
  /** Wakes the sources waiting for room (backpressure). */
  blocked: Array<() => void> = []
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
  invalidPosts = 0
  dispatchFailures = 0
  suppressedWarnings = 0
  /** Unknown-byte warnings: the current one-second window and what it held back. */
  private warnWindowEnd = Number.NEGATIVE_INFINITY
  private warnedInWindow = 0
  private suppressedInWindow = 0
  /** What asked for an exit, once one did: it then decides the stop's reason over a quit in progress. */
  exitCause: string | undefined = undefined
  /** The inline handler whose effect the loop fiber is running, if any. */
  private running: Handler | undefined = undefined
  readonly latency = new Summary()
  readonly now: () => number

  constructor(
    readonly config: Config,
    readonly platform: Platform.Platform,
    readonly agenda: Agenda.Agenda,
    readonly clock: Clock.Clock,
    /** The context the loop was made in, for its metrics (their registry). */
    readonly context: Context.Context<never>,
    readonly stopped: Deferred.Deferred<Stopped, LoopFailed>
  ) {
    this.now = () => clock.currentTimeMillisUnsafe()
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
      Effect.withFiber((fiber) =>
        Effect.callback<void>((resume) => {
          const wake = scheduled(fiber, resume)
          this.blocked.push(wake)
          return Effect.sync(() => {
            const i = this.blocked.indexOf(wake)
            if (i >= 0) this.blocked.splice(i, 1)
          })
        })
      ),
      () => this.offer(event, action)
    )
  }

  private tryOffer(event: Event.Event, action: Effect.Effect<void, unknown> | undefined): boolean {
    if (this.ended) {
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
      wake()
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
      this.inFlight.set(event, () => Deferred.doneUnsafe(handled, Exit.void))
      return Effect.andThen(this.offer(event), Deferred.await(handled)).pipe(
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

  /** The loop's own fiber, set when it starts: its wake-ups go through its dispatcher. */
  private loopFiber: Fiber.Fiber<unknown, unknown> | undefined = undefined

  private readonly waitForEvents: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.queue.length > 0 || this.ended) return resume(Effect.void)
    this.loopWake = scheduled(this.loopFiber!, resume)
    return Effect.sync(() => {
      this.loopWake = undefined
    })
  })

  /** The loop fiber's body. */
  readonly run: Effect.Effect<void> = Effect.withFiber((fiber) => {
    this.loopFiber = fiber
    return this.loop
  })

  /** Stopped or failed: takes no more events or registrations. */
  get ended(): boolean {
    return this.state === "stopped" || this.state === "failed"
  }

  readonly loop: Effect.Effect<void> = Effect.suspend((): Effect.Effect<void> => {
    if (this.ended) return Effect.void
    if (this.queue.length === 0) return Effect.andThen(this.waitForEvents, this.loop)
    const batch: Array<Event.Event> = []
    while (batch.length < this.config.batchSize && this.queue.length > 0) batch.push(this.queue.shift()!)
    this.iterations++
    const blocked = this.blocked
    if (blocked.length > 0) {
      this.blocked = []
      for (const wake of blocked) wake()
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
    this.batch = batch
    while (i < batch.length) {
      const event = batch[i++]
      this.batchNext = i
      // Isolation: whatever one event's dispatch throws or its effect dies
      // of is that event's failure, counted and logged; the batch goes on.
      let effect: Effect.Effect<void>
      try {
        effect = this.dispatch(event)
      } catch (defect) {
        effect = this.dispatchFailed(event, Cause.die(defect))
      }
      if (effect !== Effect.void) {
        return Effect.matchCauseEffect(effect, {
          onFailure: (cause) => Effect.flatMap(this.dispatchFailed(event, cause), () => this.dispatchFrom(batch, i)),
          onSuccess: () => this.dispatchFrom(batch, i)
        })
      }
    }
    return this.loop
  }

  /** A dispatch that failed outside any handler's own isolation: counted, logged, its event released. */
  private dispatchFailed(event: Event.Event, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    this.running = undefined
    this.dispatchFailures++
    this.release(event)
    if (Cause.hasInterruptsOnly(cause)) return Effect.void
    return Effect.logError(`dispatch of a ${String(event?._tag)} event failed; the event is dropped and the loop goes on`, cause)
  }

  /** The batch `dispatchFrom` works on and the index of its next event, for `drop`. */
  private batch: Array<Event.Event> = []
  private batchNext = 0

  /** The clock as read by `dispatchFrom`, for the dispatch latency. */
  private dispatchNow = 0

  // ---- dispatch ----------------------------------------------------------

  private dispatch(event: Event.Event): Effect.Effect<void> {
    if (this.ended) {
      this.discardedAtStop++
      this.release(event)
      return Effect.void
    }
    const kind = event._tag
    this.events[kind]++
    const latency = this.dispatchNow - event.at
    this.latency.add(latency)
    dispatchHistogram.updateUnsafe(latency, this.context)
    if (kind === "Signal") this.signalCounts[event.signal] = (this.signalCounts[event.signal] ?? 0) + 1
    const action = this.actions.size === 0 ? undefined : this.actions.get(event)
    if (action !== undefined) this.actions.delete(event)
    const entry = this.byKind.get(kind)!
    const keyed = entry.keyed.get(keyOf(event))
    const matched = keyed === undefined ? entry.any : entry.any.length === 0 ? keyed : [...keyed, ...entry.any]
    if (matched.length === 0 && action === undefined) {
      this.release(event)
      this.unhandled[kind]++
      return kind === "Command" ? this.unknownCommand(event.byte) : Effect.void
    }
    const effects: Array<Effect.Effect<void>> = []
    if (action !== undefined) {
      effects.push(Effect.catchCause(action, (cause) => this.logFailure(`timeout ${(event as Event.TimerFired).label}`, kind, cause)))
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
      effect = this.call(handler, event)
    } catch (error) {
      return failed(Cause.die(error))
    }
    // A synchronous handler runs right here: a batch of them takes one step.
    const exit = runSync(effect)
    if (exit === undefined) {
      this.running = handler
      return Effect.matchCauseEffect(effect, {
        onFailure: (cause) => {
          this.running = undefined
          return failed(cause)
        },
        onSuccess: () => {
          this.running = undefined
          return Effect.void
        }
      })
    }
    return exit._tag === "Success" ? Effect.void : failed(exit.cause)
  }

  /**
   * Calls `handle`; a result that is not an Effect (`undefined` from
   * `e => { console.log(e) }`, a Promise, ...) becomes an
   * `InvalidHandlerResult` failure of that handler. A throw propagates.
   */
  private call(handler: Handler, event: Event.Event): Effect.Effect<void, unknown> {
    const result: unknown = handler.handle(event)
    return Effect.isEffect(result)
      ? result as Effect.Effect<void, unknown>
      : Effect.fail(new InvalidHandlerResult({ explanation: handler.explanation, got: describeResult(result) }))
  }

  /**
   * Counts an unknown command byte and warns about it, at most
   * `unknownCommandWarnings` times per second: the first byte held back in a
   * second schedules one summary line at the second's end, so a flood costs
   * a bounded number of lines while every byte is still counted.
   */
  private unknownCommand(byte: number): Effect.Effect<void> {
    this.unknownCommands++
    const now = this.dispatchNow
    if (now >= this.warnWindowEnd && this.suppressedInWindow === 0) {
      this.warnWindowEnd = now + 1000
      this.warnedInWindow = 0
    }
    if (this.warnedInWindow < this.config.unknownCommandWarnings) {
      this.warnedInWindow++
      return Effect.logWarning(
        `unknown command byte ${Event.describeByte(byte)} ignored (${this.unknownCommands} so far); bind it with EventLoop.register({ match: { _tag: "Command", byte: ${byte} } })`
      )
    }
    this.suppressedWarnings++
    if (this.suppressedInWindow++ > 0) return Effect.void
    return this.forkWork(Effect.andThen(Effect.sleep(Duration.millis(Math.max(0, this.warnWindowEnd - now))), this.logSuppressed))
  }

  private readonly logSuppressed: Effect.Effect<void> = Effect.suspend(() => {
    const n = this.suppressedInWindow
    if (n === 0) return Effect.void
    this.suppressedInWindow = 0
    return Effect.logWarning(
      `… ${n.toLocaleString("en-US")} more unknown command bytes in the last second were counted but not logged (${this.unknownCommands.toLocaleString("en-US")} so far; at most ${this.config.unknownCommandWarnings} warnings a second, the unknownCommandWarnings option)`
    )
  })

  /** Which inline handler the loop fiber is inside, for the warning of a stop it cannot finish. */
  describeRunning(): string {
    return this.running === undefined ? "" : ` (it is inside inline handler "${this.running.explanation}", which does not end or cannot be interrupted)`
  }

  /** Runs or submits one handler; `onDone` is called once the handler is done with the event. */
  private runHandler(handler: Handler, event: Event.Event, onDone?: () => void): Effect.Effect<void> {
    handler.calls++
    this.handlerCalls++
    if (handler.run === "inline") {
      const run = Effect.catchCause(Effect.suspend(() => this.call(handler, event)), (cause) => {
        handler.failures++
        return this.logFailure(handler.explanation, event._tag, cause)
      })
      return onDone === undefined ? run : Effect.ensuring(run, Effect.sync(onDone))
    }
    // Submitted as a tasklet: the agenda logs and counts its failures under
    // the handler's explanation; here only a refused submission counts.
    return Effect.matchEffect(
      this.agenda.submit(Effect.suspend(() => this.call(handler, event)), {
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
    if (Cause.hasInterruptsOnly(cause)) return Effect.void
    return Effect.logWarning(`handler "${explanation}" failed on a ${kind} event; the loop goes on`, cause)
  }

  // ---- handlers ----------------------------------------------------------

  addHandler(
    options: EventLoop.HandlerOptions<any, any>,
    builtin: boolean
  ): Handler | TooManyHandlers | HandlerConflict | InvalidOptions | LoopStopped {
    if (this.ended) return new LoopStopped({ operation: "register" })
    const spec = decodeHandlerSpec(options, describeHandler(options))
    if (spec instanceof InvalidOptions) return spec
    const [kind, key] = matchKey(spec.match)
    const run = spec.run ?? "inline"
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
      explanation: spec.explanation,
      kind,
      key,
      run,
      handle: spec.handle,
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
    return this.forkWork(Effect.gen({ self: this }, function*() {
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
      return this.forkWork(Effect.flatMap(this.boundedQuit(this.config.quitTimeout), (report) => this.stopAfterQuit(cause, report)))
    })
  }

  exit(cause: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.ended || this.exitCause !== undefined) return Effect.void
      this.state = "quitting"
      this.exitCause = cause
      return this.forkWork(Effect.flatMap(this.boundedExit, (report) => this.stop("exit", cause, report)))
    })
  }

  /** Stops the sources and the loop and publishes why; only the first call counts. */
  stop(reason: "quit" | "exit", cause: string, report: ShutdownReport): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.ended) return Effect.void
      this.state = "stopped"
      this.drop()
      return Effect.gen({ self: this }, function*() {
        yield* this.logSuppressed
        yield* Deferred.succeed(this.stopped, new Stopped({ reason, cause, agenda: report, loop: this.stats() }))
        yield* this.stopSources
      }).pipe(Effect.uninterruptible)
    })
  }

  /** A quit's end: it publishes, unless an exit came meanwhile (that one publishes). */
  stopAfterQuit(cause: string, report: ShutdownReport): Effect.Effect<void> {
    return this.exitCause === undefined ? this.stop("quit", cause, report) : Effect.void
  }

  /** Empties the queue (counted as discarded) and wakes everything waiting on the loop. */
  private drop(): void {
    this.discardedAtStop += this.queue.length
    for (const event of this.queue.drain()) this.release(event)
    // The rest of the batch in hand counts now too: whoever awaits the stop
    // resumes at once (Effect 4) and reads the stats before the loop goes on.
    const rest = this.batch.splice(this.batchNext)
    this.discardedAtStop += rest.length
    for (const event of rest) this.release(event)
    this.actions.clear()
    const wake = this.loopWake
    this.loopWake = undefined
    wake?.()
    const blocked = this.blocked
    this.blocked = []
    for (const release of blocked) release()
  }

  /**
   * The loop fiber ended on a defect dispatch could not isolate: the loop
   * stops as `failed`, says so (even if the logger is what broke), and
   * `awaitStop` dies with `LoopFailed`. The agenda is left to its owner.
   */
  failed(cause: Cause.Cause<unknown>): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.ended) return Effect.void
      this.state = "failed"
      this.drop()
      const defect = Cause.pretty(cause)
      return Effect.gen({ self: this }, function*() {
        yield* Effect.logError("the event loop failed and stopped; awaitStop dies with LoopFailed", cause).pipe(
          Effect.catchCause(() => Effect.void)
        )
        yield* Deferred.fail(this.stopped, new LoopFailed({ defect }))
        yield* this.stopSources
      }).pipe(Effect.uninterruptible)
    })
  }

  /**
   * Quits the agenda, waiting at most `timeout` plus STOP_GRACE for its
   * report (no timeout: until it drains). Past that the loop exits the
   * agenda and, should even that not end (an uninterruptible tasklet),
   * reports what the agenda's stats say and stops without it.
   */
  boundedQuit(timeout: Duration.Duration | undefined): Effect.Effect<ShutdownReport> {
    if (timeout === undefined) return detached(this.agenda.quit(), (join) => join)
    return Effect.flatMap(within(this.agenda.quit({ timeout }), Duration.sum(timeout, STOP_GRACE)), (report) =>
      Option.isSome(report)
        ? Effect.succeed(report.value)
        : Effect.andThen(
          Effect.logWarning(`the agenda did not quit within its ${Duration.format(timeout)} timeout and ${Duration.format(STOP_GRACE)} of grace; exiting it`),
          this.boundedExit
        ))
  }

  /** Exits the agenda, waiting at most STOP_GRACE for its report. */
  get boundedExit(): Effect.Effect<ShutdownReport> {
    return Effect.flatMap(within(this.agenda.exit, STOP_GRACE), (report) =>
    Option.isSome(report) ? Effect.succeed(report.value) : Effect.gen({ self: this }, function*() {
      const stats = yield* this.agenda.stats
      yield* Effect.logWarning(
        `the agenda did not stop within ${Duration.format(STOP_GRACE)} of its exit (${stats.total.running} tasklets still running, uninterruptibly); the loop stops without it`
      )
      return new ShutdownReport({ mode: "exit", timedOut: true, dropped: 0, interrupted: 0, stats })
    }))
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
      invalidPosts: this.invalidPosts,
      dispatchFailures: this.dispatchFailures,
      suppressedWarnings: this.suppressedWarnings,
      queued: this.queue.length,
      dispatchLatency: this.latency.toJSON()
    })
  }

  readonly dump: Effect.Effect<Dump> = Effect.gen({ self: this }, function*() {
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
        Effect.flatMap(Effect.scope, (outer) => {
          const spec = decodeWatchSpec({ fd, interest, options }, describeHandler(options))
          if (spec instanceof InvalidOptions) return Effect.fail(spec)
          return Effect.flatMap(Scope.fork(outer, "sequential"), (scope) =>
            Effect.gen({ self: this }, function*() {
              const { explanation, handle, run } = spec.options
              yield* register({ explanation, handle, match: { _tag: "FdReady" as const, fd: spec.fd }, ...(run === undefined ? {} : { run }) })
              const interest: Platform.Interest = {
                ...(spec.interest.read === undefined ? {} : { read: spec.interest.read }),
                ...(spec.interest.write === undefined ? {} : { write: spec.interest.write })
              }
              const readiness = yield* this.platform.watch(spec.fd, interest)
              yield* Effect.forkScoped(Stream.runForEach(readiness, (r) =>
                this.offerReadiness(
                  new Event.FdReady({ fd, read: r.read, write: r.write, hup: r.hup, error: r.error, at: this.now() })
                )))
            }).pipe(
              Scope.provide(scope),
              Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
            ))
        }),
      post: (event) =>
        Effect.suspend((): Effect.Effect<void, LoopStopped | InvalidEvent> => {
          if (this.ended) return Effect.fail(new LoopStopped({ operation: "post" }))
          const valid = toEvent(event)
          if (valid instanceof InvalidEvent) {
            this.invalidPosts++
            return Effect.fail(valid)
          }
          return this.offerNow(valid)
        }),
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
      // A failed loop is a defect of the program, not an outcome to handle:
      // awaitStop dies with the LoopFailed.
      awaitStop: Effect.orDie(Deferred.await(this.stopped))
    }
  }
}
