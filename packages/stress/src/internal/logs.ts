/**
 * A logger that counts instead of printing: the scenarios make the runtime
 * log thousands of warnings on purpose (unknown command bytes, failing
 * tasklets), and those counts are part of what they check.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

export interface LogCounts {
  warnings: number
  errors: number
  infos: number
  /** The first few warning or error messages, for diagnostics. */
  readonly samples: Array<string>
}

const render = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => typeof part === "string" ? part : JSON.stringify(part)?.slice(0, 200) ?? String(part)).join(" ")
}

/** Runs `effect` with a counting logger and returns what it logged. */
export const counted = <A, E, R>(effect: Effect.Effect<A, E, R>, counts: LogCounts): Effect.Effect<A, E, R> => {
  const logger = Logger.make<unknown, void>(({ cause, logLevel, message }) => {
    if (LogLevel.isGreaterThanOrEqualTo(logLevel, "Error")) counts.errors++
    else if (LogLevel.isGreaterThanOrEqualTo(logLevel, "Warn")) counts.warnings++
    else if (LogLevel.isGreaterThanOrEqualTo(logLevel, "Info")) counts.infos++
    else return
    if (LogLevel.isGreaterThanOrEqualTo(logLevel, "Warn") && counts.samples.length < 5) {
      const reason = cause.reasons.length === 0 ? "" : ` (${Cause.pretty(cause).split("\n")[0]})`
      counts.samples.push(`${logLevel}: ${render(message)}${reason}`)
    }
  })
  // The layer replaces every logger in context, as the default one would print.
  return Effect.provide(effect, Logger.layer([logger]))
}

export const makeCounts = (): LogCounts => ({ warnings: 0, errors: 0, infos: 0, samples: [] })
