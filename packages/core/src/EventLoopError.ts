/**
 * Typed errors of the event loop.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * Registering one more handler would pass the loop's limit (128 by default,
 * as the original runtime's pollfd array).
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyHandlers extends Schema.TaggedError<TooManyHandlers>()("TooManyHandlers", {
  limit: Schema.Number,
  explanation: Schema.String
}) {
  override get message(): string {
    return `cannot register handler "${this.explanation}": the event loop already has ${this.limit} handlers; unregister one (close its scope) or raise the maxHandlers option`
  }
}

/**
 * An fd can have one handler only, and this one already has.
 *
 * @since 0.1.0
 * @category errors
 */
export class HandlerConflict extends Schema.TaggedError<HandlerConflict>()("HandlerConflict", {
  fd: Schema.Number,
  existing: Schema.String,
  explanation: Schema.String
}) {
  override get message(): string {
    return `cannot register handler "${this.explanation}" for fd ${this.fd}: it is already handled by "${this.existing}"; close that registration's scope first, or handle both in one handler`
  }
}

/**
 * The loop has stopped (after quit or exit) and takes no more registrations
 * or events.
 *
 * @since 0.1.0
 * @category errors
 */
export class LoopStopped extends Schema.TaggedError<LoopStopped>()("LoopStopped", {
  operation: Schema.String
}) {
  override get message(): string {
    return `${this.operation}: the event loop has stopped; build a new one (a new EventLoop layer) to go on`
  }
}

/**
 * `post` was given something that is not an event: not an instance of one
 * of the `Event` classes and not a value the `Event` schema decodes.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidEvent extends Schema.TaggedError<InvalidEvent>()("InvalidEvent", {
  value: Schema.Unknown,
  /** What the `Event` schema found wrong. */
  issue: Schema.String
}) {
  override get message(): string {
    return `post: not an event (${this.issue}); post an Event built with its class, e.g. new Event.Command({ byte: 0x44, at: 0 }), or a plain value Event.Event decodes, with _tag one of FdReady, Signal, TimerFired, Command, ChildExit`
  }
}

/**
 * A handler's `handle` returned something other than an Effect (typically
 * `undefined` from `e => { console.log(e) }`). The call counts as a failure
 * of that handler; the loop goes on.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidHandlerResult extends Schema.TaggedError<InvalidHandlerResult>()("InvalidHandlerResult", {
  explanation: Schema.String,
  /** What it returned, e.g. `"undefined"`, `"a Promise"`, `"42"`. */
  got: Schema.String
}) {
  override get message(): string {
    return `handler "${this.explanation}" returned ${this.got} instead of an Effect; handle must return an Effect, e.g. handle: (e) => Effect.sync(() => console.log(e)) or Effect.log(e)${
      this.got === "a Promise" ? "; wrap async work as Effect.promise(() => work(e))" : ""
    }`
  }
}

/**
 * The loop's own fiber ended on a defect it could not isolate (for example
 * a logger that throws while the loop reports a handler failure). The loop
 * is stopped (`state: "failed"`); `awaitStop` dies with this error.
 *
 * @since 0.1.0
 * @category errors
 */
export class LoopFailed extends Schema.TaggedError<LoopFailed>()("LoopFailed", {
  /** The defect, pretty-printed. */
  defect: Schema.String
}) {
  override get message(): string {
    return `the event loop failed and stopped: ${this.defect}; check the logger and handlers named above, then build a new loop`
  }
}
