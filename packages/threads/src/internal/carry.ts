/**
 * The part of a submitter's context a thread tasklet carries to its worker
 * thread: log annotations, log levels and the parent span. A context cannot
 * cross threads (it holds services, fibers and closures), so what is carried
 * is plain data, captured on the submitting side and turned back into
 * context entries on the thread: the span as an external span (trace id and
 * span id), so spans the tasklet makes nest under the submitter's.
 *
 * Only what differs from Effect's defaults is carried; a submitter with a
 * default context sends nothing.
 *
 * @internal
 */
import * as Context from "effect/Context"
import type * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as References from "effect/References"
import * as Tracer from "effect/Tracer"

/** Carried context, as it crosses in a dispatch entry. */
export interface Carried {
  /** Log annotations whose values can be structured-cloned (the others stay behind). */
  readonly annotations: Readonly<Record<string, unknown>> | undefined
  readonly minimumLogLevel: LogLevel.LogLevel | undefined
  readonly logLevel: LogLevel.Severity | undefined
  /** The parent span: trace id, span id, sampled. */
  readonly span: readonly [traceId: string, spanId: string, sampled: boolean] | undefined
}

const defaults = Context.empty()
const defaultMinimum = Context.get(defaults, References.MinimumLogLevel)
const defaultLevel = Context.get(defaults, References.CurrentLogLevel)

const isPrimitive = (u: unknown): boolean =>
  u === null || u === undefined || typeof u === "string" || typeof u === "number" || typeof u === "boolean" ||
  typeof u === "bigint"

const cloneable = (u: unknown): boolean => {
  if (isPrimitive(u)) return true
  try {
    structuredClone(u)
    return true
  } catch {
    return false
  }
}

const cloneableAnnotations = (
  annotations: Readonly<Record<string, unknown>>
): Readonly<Record<string, unknown>> | undefined => {
  const keys = Object.keys(annotations)
  if (keys.length === 0) return undefined
  let kept: Record<string, unknown> | undefined = undefined
  for (const key of keys) {
    const value = annotations[key]
    if (cloneable(value)) (kept ??= {})[key] = value
  }
  return kept
}

const compute = (context: Context.Context<never>): Carried | undefined => {
  const annotations = cloneableAnnotations(Context.get(context, References.CurrentLogAnnotations))
  const minimum = Context.get(context, References.MinimumLogLevel)
  const level = Context.get(context, References.CurrentLogLevel)
  const parent = Context.getOption(context, Tracer.ParentSpan)
  const span = Option.isSome(parent)
    ? [parent.value.traceId, parent.value.spanId, parent.value.sampled] as const
    : undefined
  const carried: Carried = {
    annotations,
    minimumLogLevel: minimum === defaultMinimum ? undefined : minimum,
    logLevel: level === defaultLevel ? undefined : level,
    span
  }
  return annotations === undefined && carried.minimumLogLevel === undefined && carried.logLevel === undefined &&
      span === undefined
    ? undefined
    : carried
}

// Contexts are immutable, and a submitter usually submits many tasklets
// from one: the capture is computed once per context object.
const captured = new WeakMap<Context.Context<never>, Carried | null>()

/** What a tasklet submitted from `context` carries to its thread (`undefined`: nothing). */
export const capture = (context: Context.Context<never> | undefined): Carried | undefined => {
  if (context === undefined) return undefined
  const memo = captured.get(context)
  if (memo !== undefined) return memo ?? undefined
  const carried = compute(context)
  captured.set(context, carried ?? null)
  return carried
}

/** `base` with the carried entries added: the context a thread tasklet starts under. */
export const restore = <R>(base: Context.Context<R>, carried: Carried): Context.Context<R> => {
  let context = base
  if (carried.annotations !== undefined) {
    context = Context.add(context, References.CurrentLogAnnotations, carried.annotations)
  }
  if (carried.minimumLogLevel !== undefined) {
    context = Context.add(context, References.MinimumLogLevel, carried.minimumLogLevel)
  }
  if (carried.logLevel !== undefined) {
    context = Context.add(context, References.CurrentLogLevel, carried.logLevel)
  }
  if (carried.span !== undefined) {
    const [traceId, spanId, sampled] = carried.span
    context = Context.add(context, Tracer.ParentSpan, Tracer.externalSpan({ traceId, spanId, sampled }))
  }
  return context
}
