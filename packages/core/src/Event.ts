/**
 * Events seen by the event loop, as an `effect/Schema` union. Every event
 * carries `at`, the monotonic time (ms on the loop's `Clock`) it was observed.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A watched file descriptor became ready. `hup` means the peer closed (the
 * watch ends after this event); `error` means the fd is in an error state or
 * was closed under the watch.
 *
 * @since 0.1.0
 * @category schemas
 */
export class FdReady extends Schema.TaggedClass<FdReady>()("FdReady", {
  fd: Schema.Number,
  read: Schema.Boolean,
  write: Schema.Boolean,
  hup: Schema.Boolean,
  error: Schema.Boolean,
  at: Schema.Number
}) {}

/**
 * A signal was delivered, e.g. `"SIGUSR1"` or `"SIGRTMIN+3"`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Signal extends Schema.TaggedClass<Signal>()("Signal", {
  signal: Schema.String,
  at: Schema.Number
}) {}

/**
 * A timeout (see `Timeouts`) reached its deadline. For periodic timeouts,
 * `missed` counts the ticks skipped because the loop was late (they are not
 * fired in a burst).
 *
 * @since 0.1.0
 * @category schemas
 */
export class TimerFired extends Schema.TaggedClass<TimerFired>()("TimerFired", {
  id: Schema.Number,
  label: Schema.String,
  deadline: Schema.Number,
  missed: Schema.Number,
  at: Schema.Number
}) {}

/**
 * A command byte arrived on the command channel (the self-pipe).
 *
 * @since 0.1.0
 * @category schemas
 */
export class Command extends Schema.TaggedClass<Command>()("Command", {
  byte: Schema.Number.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 255 })),
  at: Schema.Number
}) {}

/**
 * A child process ended, with its exit code or the signal that killed it.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ChildExit extends Schema.TaggedClass<ChildExit>()("ChildExit", {
  pid: Schema.Number,
  code: Schema.NullOr(Schema.Number),
  signal: Schema.NullOr(Schema.String),
  at: Schema.Number
}) {}

/**
 * Any event.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Event } from "@refpersys/core"
 *
 * const json = Schema.encodeSync(Event.Event)(new Event.Command({ byte: 68, at: 12.5 }))
 * // { _tag: "Command", byte: 68, at: 12.5 }
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const Event = Schema.Union([FdReady, Signal, TimerFired, Command, ChildExit])

/**
 * @since 0.1.0
 * @category models
 */
export type Event = typeof Event.Type

/**
 * The event kinds, i.e. the `_tag`s of {@link Event}.
 *
 * @since 0.1.0
 * @category models
 */
export type Kind = Event["_tag"]

/**
 * All event kinds, in a fixed order used by stats and dumps.
 *
 * @since 0.1.0
 * @category constants
 */
export const kinds: ReadonlyArray<Kind> = ["FdReady", "Signal", "TimerFired", "Command", "ChildExit"]

/**
 * Describes a command byte for logs: `0x44 'D'`, or `0x00` when not printable.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeByte = (byte: number): string => {
  const hex = `0x${byte.toString(16).padStart(2, "0")}`
  return byte >= 0x20 && byte < 0x7f ? `${hex} '${String.fromCharCode(byte)}'` : hex
}
