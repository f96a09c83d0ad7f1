/**
 * Typed errors of the agenda. Each message says what happened and what to do.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Priority } from "./Priority.js"

/**
 * The agenda no longer accepts tasklets because it is quitting or has stopped.
 *
 * @since 0.1.0
 * @category errors
 */
export class AgendaClosed extends Schema.TaggedError<AgendaClosed>()("AgendaClosed", {
  state: Schema.Literals(["quitting", "stopped"]),
  /** What was refused: a submission (the default) or a GC request. */
  action: Schema.Literals(["submit", "requestGc"]).pipe(
    Schema.withConstructorDefault(Effect.succeed("submit" as const)),
    Schema.optionalKey,
    Schema.withDecodingDefaultKey(Effect.succeed("submit" as const))
  )
}) {
  override get message(): string {
    return this.action === "requestGc"
      ? `the GC request was not served: the agenda ${this.state === "stopped" ? "stopped" : "is quitting"} (exit fails pending GC requests and interrupts a running collector); request GC while the agenda runs, and await the barrier before calling quit/exit`
      : `the agenda is ${this.state} and accepts no new tasklets; submit before calling quit/exit, or build a new agenda`
  }
}

/**
 * A garbage-collection barrier did not end within the agenda's `gcTimeout`.
 * While it is `"forming"`, some running tasklets did not reach a safe point
 * (`busy` lists their labels); while `"collecting"`, the collector ran too
 * long and was interrupted (and abandoned if it ignores interruption). Either
 * way the barrier was given up and the workers resumed.
 *
 * @since 0.1.0
 * @category errors
 */
export class GcTimeout extends Schema.TaggedError<GcTimeout>()("GcTimeout", {
  phase: Schema.Literals(["forming", "collecting"]),
  /** The bound that passed, in milliseconds. */
  timeoutMs: Schema.Number,
  /** Tasklets that had not reached a safe point (phase `"forming"`). */
  busy: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return this.phase === "forming"
      ? `the GC barrier did not form within ${this.timeoutMs} ms: ${this.busy.length === 0 ? "a tasklet" : this.busy.join(", ")} never reached a safe point; call Agenda.safePoint in long tasklets, or raise gcTimeout`
      : `the GC collector did not end within ${this.timeoutMs} ms and was interrupted; make it shorter, or raise gcTimeout`
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
