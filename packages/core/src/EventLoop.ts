/**
 * The event loop: one bounded event queue fed by every platform source (fd
 * readiness, signals, the timer, command bytes, child exits), taken in
 * batches and dispatched to registered handlers.
 *
 * A handler has an explanation (shown in dumps and failure logs, as in the
 * original runtime), a match and an effect. It runs inline in the loop (fast,
 * must not block) or is submitted to the {@link Agenda} as a tasklet at a
 * priority. A failing handler is logged with its explanation and counted; the
 * loop goes on. A `handle` that returns something other than an Effect
 * (`undefined`, a Promise, ...) is such a failure too, and so is anything one
 * event's dispatch throws: one bad handler or event never stops the loop.
 *
 * Default bindings (`defaultBindings: true`): command bytes `D` dump, `G`
 * runs an agenda GC barrier, `Q` quits (drains the agenda, then stops the
 * loop), `X` exits (interrupts now); `SIGINT` and `SIGTERM` quit, a second
 * `SIGINT` while quitting exits; `SIGUSR1` dumps. An unknown command byte is
 * counted and ignored, and logged as a warning with its value at most
 * `unknownCommandWarnings` times a second (10 by default), with a summary line
 * of the ones held back.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Agenda from "./Agenda.js"
import type { InvalidOptions } from "./AgendaError.js"
import { AgendaStats, ShutdownReport } from "./AgendaStats.js"
import type * as Event from "./Event.js"
import type { HandlerConflict, InvalidEvent, LoopStopped, TooManyHandlers } from "./EventLoopError.js"
import * as internal from "./internal/eventLoop.js"
import * as Platform from "./Platform.js"
import type { Priority } from "./Priority.js"
import * as Timeouts from "./Timeouts.js"

/**
 * What a handler matches: an event kind, optionally narrowed to one fd,
 * signal, timer id, command byte (a number or a one-character string) or
 * child pid.
 *
 * @since 0.1.0
 * @category models
 */
export type Match =
  | { readonly _tag: "FdReady"; readonly fd?: number }
  | { readonly _tag: "Signal"; readonly signal?: string }
  | { readonly _tag: "TimerFired"; readonly id?: number }
  | { readonly _tag: "Command"; readonly byte?: number | string }
  | { readonly _tag: "ChildExit"; readonly pid?: number }

/**
 * The event type a match receives.
 *
 * @since 0.1.0
 * @category models
 */
export type EventFor<M extends Match> = Extract<Event.Event, { readonly _tag: M["_tag"] }>

/**
 * A handler registration, checked by one schema at `register` and `watchFd`
 * (a bad value is an `InvalidOptions` naming it). `handle` must return an
 * Effect: the type says so, and at run time a handler returning anything
 * else (`undefined` from `e => { console.log(e) }`) fails that call with
 * `InvalidHandlerResult`, counted and logged; the loop goes on.
 *
 * @since 0.1.0
 * @category models
 */
export interface HandlerOptions<M extends Match, E> {
  /** Why this handler exists; shown in dumps and in failure logs. */
  readonly explanation: string
  readonly match: M
  readonly handle: (event: EventFor<M>) => Effect.Effect<void, E>
  /** `"inline"` (default) runs in the loop; a priority submits a tasklet to the agenda. */
  readonly run?: "inline" | Priority
}

/**
 * Options of the loop.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Events the queue holds (default 4,096). */
  readonly capacity?: number
  /**
   * When the queue is full: `"backpressure"` (default) makes sources wait,
   * `"dropNewest"` drops the arriving event, `"dropOldest"` drops the oldest
   * queued one. Every drop and every wait is counted.
   */
  readonly overflow?: "backpressure" | "dropNewest" | "dropOldest"
  /** Most user handlers at once (default 128). */
  readonly maxHandlers?: number
  /** Most events taken per loop iteration (default 64). */
  readonly batchSize?: number
  /** Signals to claim (default SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2). */
  readonly signals?: ReadonlyArray<string>
  /** Install the default command and signal bindings (default true). */
  readonly defaultBindings?: boolean
  /**
   * How long a quit lets the agenda drain before exiting (default: no limit;
   * 30 seconds when the loop's scope closes). The loop waits at most one
   * second more for the agenda's report, then stops without it.
   */
  readonly quitTimeout?: Duration.Input
  /**
   * Unknown command bytes warned about per second (default 10; 0 logs only
   * the summaries). Every unknown byte is counted in `unknownCommands`; the
   * ones past the limit are summed up in one line at the end of the second.
   */
  readonly unknownCommandWarnings?: number
}

/**
 * A registered handler, as shown in dumps.
 *
 * @since 0.1.0
 * @category schemas
 */
export const HandlerInfo = Schema.Struct({
  id: Schema.Number,
  explanation: Schema.String,
  match: Schema.String,
  run: Schema.String,
  builtin: Schema.Boolean,
  calls: Schema.Number,
  failures: Schema.Number
})

/**
 * A duration summary in milliseconds.
 *
 * @since 0.1.0
 * @category schemas
 */
export const LatencySummary = Schema.Struct({
  count: Schema.Number,
  min: Schema.Number,
  max: Schema.Number,
  mean: Schema.Number
})

const perKind = Schema.Struct({
  FdReady: Schema.Number,
  Signal: Schema.Number,
  TimerFired: Schema.Number,
  Command: Schema.Number,
  ChildExit: Schema.Number
})

/**
 * Counters of the loop.
 *
 * @since 0.1.0
 * @category schemas
 */
export class LoopStats extends Schema.Class<LoopStats>("LoopStats")({
  /** `failed`: the loop fiber ended on a defect (see `LoopFailed`). */
  state: Schema.Literals(["running", "quitting", "stopped", "failed"]),
  /** Batches taken from the queue. */
  iterations: Schema.Number,
  /** Events received per kind. */
  events: perKind,
  /** Events no handler matched, per kind. */
  unhandled: perKind,
  /** Signals received per name. */
  signals: Schema.Record(Schema.String, Schema.Number),
  /** Command bytes no binding matched. */
  unknownCommands: Schema.Number,
  handlerCalls: Schema.Number,
  handlerFailures: Schema.Number,
  /** Events dropped by the overflow policy. */
  overflow: Schema.Number,
  /** Times a source waited for room (backpressure). */
  backpressureWaits: Schema.Number,
  /** Events still queued when the loop stopped, never dispatched. */
  discardedAtStop: Schema.Number,
  /** Values `post` refused with `InvalidEvent`. */
  invalidPosts: Schema.Number,
  /** Events whose dispatch failed outside any handler's isolation (logged, dropped). */
  dispatchFailures: Schema.Number,
  /** Unknown-command warnings held back by the rate limit (summed up in summary lines). */
  suppressedWarnings: Schema.Number,
  queued: Schema.Number,
  /** From an event's arrival to its dispatch. */
  dispatchLatency: LatencySummary
}) {}

/**
 * A snapshot of the whole runtime: loop, handlers, timeouts, agenda.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Dump extends Schema.Class<Dump>("Dump")({
  /** Clock time of the dump (ms). */
  at: Schema.Number,
  platform: Schema.Struct({ name: Schema.String, maxFds: Schema.Number, realtimeSignals: Schema.Boolean }),
  loop: LoopStats,
  handlers: Schema.Array(HandlerInfo),
  timeouts: Schema.Array(Timeouts.TimeoutInfo),
  agenda: AgendaStats
}) {}

/**
 * Why and how the loop stopped.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Stopped extends Schema.Class<Stopped>("Stopped")({
  reason: Schema.Literals(["quit", "exit"]),
  /** What triggered it, e.g. `"command Q"`, `"SIGTERM"`, `"quit()"`. */
  cause: Schema.String,
  agenda: ShutdownReport,
  loop: LoopStats
}) {}

/**
 * The event loop service.
 *
 * @since 0.1.0
 * @category models
 */
export interface EventLoop {
  /**
   * Registers a handler until the scope closes. Fails with
   * `TooManyHandlers` past the limit, `HandlerConflict` for a second
   * handler of one fd, `InvalidOptions` for a bad match, `LoopStopped` after stop.
   */
  readonly register: <M extends Match, E>(
    options: HandlerOptions<M, E>
  ) => Effect.Effect<
    typeof HandlerInfo.Type,
    TooManyHandlers | HandlerConflict | InvalidOptions | LoopStopped,
    Scope.Scope
  >
  /**
   * Watches an fd through the platform and registers its handler, until the
   * scope closes. The watch ends by itself after a hang-up or error event.
   * It passes on the next readiness report only once the handler is done
   * with the last one (its tasklet ended, for a handler run on the agenda),
   * so a handler is never sent duplicate reports and may close the fd; a
   * refused watch leaves no handler registered.
   */
  readonly watchFd: <E>(
    fd: number,
    interest: Platform.Interest,
    options: Omit<HandlerOptions<{ readonly _tag: "FdReady"; readonly fd: number }, E>, "match">
  ) => Effect.Effect<
    void,
    Platform.PlatformError | TooManyHandlers | HandlerConflict | InvalidOptions | LoopStopped,
    Scope.Scope
  >
  /**
   * Puts an event in the queue, as if a source had produced it (subject to
   * the overflow policy). An instance of an `Event` class passes as it is;
   * any other value is decoded with the `Event` schema and refused with
   * `InvalidEvent` if it is not one.
   */
  readonly post: (event: Event.Event) => Effect.Effect<void, LoopStopped | InvalidEvent>
  /** Sends a command byte (a number or one character) through the platform's command channel. */
  readonly send: (command: number | string) => Effect.Effect<void, Platform.PlatformError | InvalidOptions>
  /** The loop's timeouts; firings pass through the event queue as `TimerFired` events. */
  readonly timeouts: Timeouts.Timeouts
  readonly stats: Effect.Effect<LoopStats>
  /** A snapshot of everything; also logged by the `D` command and `SIGUSR1`. */
  readonly dump: Effect.Effect<Dump>
  /** Quits: drains the agenda, then stops the loop. Returns at once; see `awaitStop`. */
  readonly quit: Effect.Effect<void>
  /** Exits: interrupts the agenda's running tasklets, drops queued ones, stops the loop. */
  readonly exit: Effect.Effect<void>
  /**
   * Waits until the loop has stopped. Should the loop fiber end on a defect
   * instead (a bug no handler isolation caught), it dies with `LoopFailed`.
   */
  readonly awaitStop: Effect.Effect<Stopped>
}

/**
 * The service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const EventLoop: Context.Service<EventLoop, EventLoop> = Context.Service<EventLoop>(
  "@refpersys/core/EventLoop"
)

/**
 * Starts an event loop in the scope; it needs a `Platform` and an `Agenda`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agenda, EventLoop } from "@refpersys/core"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const loop = yield* EventLoop.make()
 *   yield* loop.register({
 *     explanation: "reload configuration on SIGHUP",
 *     match: { _tag: "Signal", signal: "SIGHUP" },
 *     handle: () => Effect.log("reloading"),
 *     run: "Normal"
 *   })
 *   return yield* loop.awaitStop // after SIGTERM, SIGINT or a Q command
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<EventLoop, InvalidOptions | Platform.PlatformError, Platform.Platform | Agenda.Agenda | Scope.Scope> =>
  internal.make(options)

/**
 * A layer providing the {@link EventLoop}; needs `Platform` and `Agenda`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Agenda, EventLoop } from "@refpersys/core"
 *
 * // Give the loop an agenda and keep the agenda visible to the program too:
 * const Runtime = EventLoop.layer().pipe(Layer.provideMerge(Agenda.layer({ workers: 4 })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<EventLoop, InvalidOptions | Platform.PlatformError, Platform.Platform | Agenda.Agenda> =>
  Layer.effect(EventLoop, make(options))
