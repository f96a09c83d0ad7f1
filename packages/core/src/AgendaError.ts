/**
 * Typed errors of the agenda. Each message says what happened and what to do.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { Priority } from "./Priority.js"

/**
 * The agenda no longer accepts tasklets because it is quitting or has stopped.
 *
 * @since 0.1.0
 * @category errors
 */
export class AgendaClosed extends Schema.TaggedError<AgendaClosed>()("AgendaClosed", {
  state: Schema.Literal("quitting", "stopped")
}) {
  override get message(): string {
    return `the agenda is ${this.state} and accepts no new tasklets; submit before calling quit/exit, or build a new agenda`
  }
}

/**
 * `trySubmit` found the queue of that priority at capacity.
 *
 * @since 0.1.0
 * @category errors
 */
export class AgendaFull extends Schema.TaggedError<AgendaFull>()("AgendaFull", {
  priority: Priority,
  capacity: Schema.Number
}) {
  override get message(): string {
    return `the ${this.priority} queue is full (${this.capacity} tasklets); use submit to wait for room, or raise the capacity option`
  }
}

/**
 * An option given to a constructor is out of range.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>()("InvalidOptions", {
  option: Schema.String,
  value: Schema.Unknown,
  expected: Schema.String
}) {
  override get message(): string {
    return `invalid option ${this.option}: got ${formatValue(this.value)}, expected ${this.expected}`
  }
}

const formatValue = (value: unknown): string => {
  try {
    if (typeof value === "string") return JSON.stringify(value)
    if (typeof value === "bigint") return `${value}n`
    if (typeof value === "object" && value !== null && (Array.isArray(value) || isPlainObject(value))) {
      return JSON.stringify(value, (_, v) => typeof v === "bigint" ? `${v}n` : v)
    }
    return String(value)
  } catch {
    return "<unprintable>"
  }
}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
