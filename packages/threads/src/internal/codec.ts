/**
 * The Schema codecs of a task, compiled once per task definition and shared
 * by both sides of the boundary: the submitting side encodes arguments and
 * decodes results, the worker thread decodes arguments and encodes results.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaParser from "effect/SchemaParser"
import * as util from "node:util"
import type { CodecStage } from "../ThreadAgendaError.js"

/** `undefined` on success is not ambiguous: the value is wrapped. */
export type Coded = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly detail: string }

export interface Codec {
  readonly encodeArgs: (value: unknown) => Coded
  readonly decodeArgs: (value: unknown) => Coded
  readonly encodeSuccess: (value: unknown) => Coded
  readonly decodeSuccess: (value: unknown) => Coded
  readonly encodeFailure: (value: unknown) => Coded
  readonly decodeFailure: (value: unknown) => Coded
}

export interface Schemas {
  readonly args: Schema.Codec<any, any>
  readonly success: Schema.Codec<any, any>
  readonly failure: Schema.Codec<any, any>
}

const formatIssue = SchemaIssue.makeFormatterDefault()

const wrap = (f: (u: unknown) => Exit.Exit<unknown, SchemaIssue.Issue>) => (value: unknown): Coded => {
  const exit = f(value)
  if (Exit.isSuccess(exit)) return { ok: true, value: exit.value }
  const issue = Cause.findErrorOption(exit.cause)
  // A Schema whose transformation dies has no issue: its defect is the detail.
  return { ok: false, detail: Option.isSome(issue) ? formatIssue(issue.value) : Cause.pretty(exit.cause) }
}

const codecs = new WeakMap<Schemas, Codec>()

export const codecOf = (task: Schemas): Codec => {
  let codec = codecs.get(task)
  if (codec === undefined) {
    codec = {
      encodeArgs: wrap(SchemaParser.encodeUnknownExit(task.args)),
      decodeArgs: wrap(SchemaParser.decodeUnknownExit(task.args)),
      encodeSuccess: wrap(SchemaParser.encodeUnknownExit(task.success)),
      decodeSuccess: wrap(SchemaParser.decodeUnknownExit(task.success)),
      encodeFailure: wrap(SchemaParser.encodeUnknownExit(task.failure)),
      decodeFailure: wrap(SchemaParser.decodeUnknownExit(task.failure))
    }
    codecs.set(task, codec)
  }
  return codec
}

const encodeDefectSchema = Schema.encodeSync(Schema.Defect())

/**
 * Like `Schema.Defect`, but keeps the stack (it stays in-process, and names
 * the line that failed), and describes a value JSON would lose (a function,
 * a Symbol) instead of dropping it.
 */
export const encodeDefect = (u: unknown): unknown => {
  if (u instanceof Error) return { name: u.name, message: u.message, stack: u.stack }
  const found = findUncloneable(u)
  if (found === undefined) return encodeDefectSchema(u)
  return {
    name: "Error",
    message: `a defect that cannot cross threads (${uncloneableDetail(found)}): ` +
      util.inspect(u, { depth: 3, breakLength: Infinity })
  }
}

export const decodeDefect: (u: unknown) => unknown = Schema.decodeUnknownSync(Schema.Defect())

/** Where a value that cannot be structured-cloned sits, and what it is. */
export interface Uncloneable {
  /** Property path from the value's root, e.g. `nested[1].callback`; `""` for the root itself. */
  readonly path: string
  readonly what: string
}

const cloneable = (value: unknown): boolean => {
  try {
    structuredClone(value)
    return true
  } catch {
    return false
  }
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/

const childPath = (path: string, key: string | number): string =>
  typeof key === "number" ? `${path}[${key}]` : IDENTIFIER.test(key) ? (path === "" ? key : `${path}.${key}`) : `${path}[${JSON.stringify(key)}]`

const describeValue = (value: unknown): string =>
  typeof value === "function"
    ? `a function${value.name === "" ? "" : ` (${value.name})`}`
    : typeof value === "symbol"
    ? `a Symbol (${String(value.description)})`
    : `a ${(value as object)?.constructor?.name ?? "value"}`

const children = (value: object): Array<readonly [string | number, unknown]> => {
  if (Array.isArray(value)) return value.map((v, i) => [i, v] as const)
  if (value instanceof Map) {
    return Array.from(value).flatMap(([k, v], i) => [[`<key ${i}>`, k], [`<value ${i}>`, v]] as const)
  }
  if (value instanceof Set) return Array.from(value).map((v, i) => [`<item ${i}>`, v] as const)
  return Object.entries(value)
}

/**
 * The first part of `value` that `postMessage` cannot structured-clone
 * (a function, a Symbol, a WeakMap, a Promise, ...), or `undefined` when it
 * clones. Called only after a post failed, so it may clone sub-values to
 * find the culprit; `seen` guards against cycles.
 */
export const findUncloneable = (value: unknown, path = "", seen = new Set<object>()): Uncloneable | undefined => {
  if (cloneable(value)) return undefined
  if (typeof value === "object" && value !== null && !seen.has(value)) {
    seen.add(value)
    for (const [key, child] of children(value)) {
      const found = findUncloneable(child, childPath(path, key), seen)
      if (found !== undefined) return found
    }
  }
  return { path, what: describeValue(value) }
}

/** The detail of a `TaskCodecError` for a value that cannot cross threads. */
export const uncloneableDetail = (found: Uncloneable): string =>
  `the value ${found.path === "" ? "itself" : `at ${found.path}`} is ${found.what}, ` +
  "which cannot be structured-cloned to another thread"

export type { CodecStage }
