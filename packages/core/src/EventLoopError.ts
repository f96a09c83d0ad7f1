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
