/**
 * The Schema codecs of a task, compiled once per task definition and shared
 * by both sides of the boundary: the submitting side encodes arguments and
 * decodes results, the worker thread decodes arguments and encodes results.
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
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
  readonly args: Schema.Schema<any, any>
  readonly success: Schema.Schema<any, any>
  readonly failure: Schema.Schema<any, any>
}

const wrap = (f: (u: unknown) => Either.Either<unknown, ParseResult.ParseIssue>) => (value: unknown): Coded => {
  const result = f(value)
  return Either.isRight(result)
    ? { ok: true, value: result.right }
    : { ok: false, detail: ParseResult.TreeFormatter.formatIssueSync(result.left) }
}

const codecs = new WeakMap<Schemas, Codec>()

export const codecOf = (task: Schemas): Codec => {
  let codec = codecs.get(task)
  if (codec === undefined) {
    codec = {
      encodeArgs: wrap(ParseResult.encodeUnknownEither(task.args)),
      decodeArgs: wrap(ParseResult.decodeUnknownEither(task.args)),
      encodeSuccess: wrap(ParseResult.encodeUnknownEither(task.success)),
      decodeSuccess: wrap(ParseResult.decodeUnknownEither(task.success)),
      encodeFailure: wrap(ParseResult.encodeUnknownEither(task.failure)),
      decodeFailure: wrap(ParseResult.decodeUnknownEither(task.failure))
    }
    codecs.set(task, codec)
  }
  return codec
}

const encodeDefectSchema = Schema.encodeSync(Schema.Defect)

/** Like `Schema.Defect`, but keeps the stack: it stays in-process, and names the line that failed. */
export const encodeDefect = (u: unknown): unknown =>
  u instanceof Error ? { name: u.name, message: u.message, stack: u.stack } : encodeDefectSchema(u)

export const decodeDefect: (u: unknown) => unknown = Schema.decodeSync(Schema.Defect)

export type { CodecStage }
