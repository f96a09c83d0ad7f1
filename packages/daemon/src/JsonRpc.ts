/**
 * JSON-RPC 2.0 over lines of text: the request and response Schemas, the
 * standard error codes, method definitions, and {@link handleLine}, which
 * turns one line into its reply. Transport-free, so the daemon's FIFO and
 * the tests share it.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"

/**
 * A numeric id: finite and within ±`Number.MAX_SAFE_INTEGER`. JSON-RPC 2.0
 * ids are a String, a Number or Null; a number JavaScript cannot hold
 * exactly (`1e400` parses as `Infinity`, `12345678901234567890` loses its
 * last digits) could not be echoed back as sent, so it is refused.
 *
 * @since 0.1.0
 * @category schemas
 */
export const NumericId = Schema.Number.check(
  Schema.makeFilter((n: number) =>
    (Number.isFinite(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER) ||
    `a numeric id must be finite and within ±${Number.MAX_SAFE_INTEGER} to be echoed back exactly, got ${String(n)}`
  )
)

/**
 * A request id: a string, a number (see {@link NumericId}), or `null`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Id = Schema.Union([Schema.String, NumericId, Schema.Null])

/**
 * @since 0.1.0
 * @category models
 */
export type Id = typeof Id.Type

/**
 * A request. Without `id` it is a notification: it runs, and gets no reply.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Request = Schema.Struct({
  jsonrpc: Schema.Literal("2.0"),
  method: Schema.String,
  params: Schema.optional(
    Schema.Union([Schema.Array(Schema.Unknown), Schema.Record(Schema.String, Schema.Unknown)])
  ),
  id: Schema.optional(Id)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Request = typeof Request.Type

/**
 * The error member of a failed response.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorObject = Schema.Struct({
  code: Schema.Int,
  message: Schema.String,
  data: Schema.optional(Schema.Unknown)
})

/**
 * A successful response.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Success = Schema.Struct({
  jsonrpc: Schema.Literal("2.0"),
  result: Schema.Unknown,
  id: Id
})

/**
 * A failed response.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Failure = Schema.Struct({
  jsonrpc: Schema.Literal("2.0"),
  error: ErrorObject,
  id: Id
})

/**
 * Any response.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { JsonRpc } from "@refpersys/daemon"
 *
 * const reply = Schema.decodeUnknownSync(JsonRpc.Response)(JSON.parse('{"jsonrpc":"2.0","result":1,"id":7}'))
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const Response = Schema.Union([Failure, Success])

/**
 * @since 0.1.0
 * @category models
 */
export type Response = typeof Response.Type

/**
 * Decodes a parsed reply (or a batch's element) as a {@link Response},
 * refusing members JSON-RPC does not define: a reply with both `result` and
 * `error`, or with neither, is not a response.
 *
 * @example
 * ```ts
 * import { Result } from "effect"
 * import { JsonRpc } from "@refpersys/daemon"
 *
 * Result.isSuccess(JsonRpc.decodeResponse({ jsonrpc: "2.0", result: 1, id: 1 })) // true
 * Result.isSuccess(JsonRpc.decodeResponse({ jsonrpc: "2.0", id: 1 }))            // false
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeResponse = (value: unknown): Result.Result<Response, Schema.SchemaError> =>
  typeof value === "object" && value !== null && ("result" in value) !== ("error" in value)
    ? decodeResponseStrict(value)
    : Result.fail(
      new Schema.SchemaError(
        new SchemaIssue.InvalidValue({ message: "a response has exactly one of result and error" }, value)
      )
    )

const decodeResponseStrict = Schema.decodeUnknownResult(Response, { onExcessProperty: "error" })

/**
 * The standard error codes, plus `ServerError` (-32000) for a method that
 * understood the request but could not do it (e.g. the agenda is quitting).
 *
 * @since 0.1.0
 * @category constants
 */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  ServerError: -32000
} as const

/**
 * A method's failure, sent to the client as the response's `error`.
 *
 * @since 0.1.0
 * @category errors
 */
export class RpcError extends Schema.TaggedError<RpcError>()("RpcError", {
  code: Schema.Int,
  message: Schema.String,
  data: Schema.optional(Schema.Unknown)
}) {}

/**
 * A method: how to decode its params (an object; absent params decode as
 * `{}`), how to encode its result, and what it does. `afterReply` runs once
 * the reply is written, for methods such as `quit` whose effect would
 * otherwise race their own reply.
 *
 * @since 0.1.0
 * @category models
 */
export interface Method<P, A> {
  readonly description: string
  readonly params: Schema.Codec<P, any>
  readonly result: Schema.Codec<A, any>
  readonly handle: (params: P) => Effect.Effect<A, RpcError>
  readonly afterReply?: (params: P) => Effect.Effect<void>
}

/**
 * Methods by name.
 *
 * @since 0.1.0
 * @category models
 */
export type Methods = Readonly<Record<string, Method<any, any>>>

/**
 * Defines a method with its types inferred from the Schemas.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JsonRpc } from "@refpersys/daemon"
 *
 * const add = JsonRpc.method({
 *   description: "adds two numbers",
 *   params: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
 *   result: Schema.Number,
 *   handle: ({ a, b }) => Effect.succeed(a + b)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const method = <P, PI, A, AI>(definition: {
  readonly description: string
  readonly params: Schema.Codec<P, PI>
  readonly result: Schema.Codec<A, AI>
  readonly handle: (params: P) => Effect.Effect<A, RpcError>
  readonly afterReply?: (params: P) => Effect.Effect<void>
}): Method<P, A> => definition

/**
 * What handling a line produced: the reply text (without a newline), or
 * `undefined` when nothing is owed (notifications), and the effects to run
 * once the reply is written.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handled {
  readonly reply: string | undefined
  readonly afterReply: Effect.Effect<void>
  /** Requests handled (a batch counts each; notifications count). */
  readonly requests: number
  /** Error responses in the reply. */
  readonly errors: number
}

/**
 * A failed response.
 *
 * @example
 * ```ts
 * import { JsonRpc } from "@refpersys/daemon"
 *
 * JSON.stringify(JsonRpc.failure(null, JsonRpc.ErrorCode.ParseError, "Parse error"))
 * // {"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const failure = (id: Id, code: number, message: string, data?: unknown): typeof Failure.Type => ({
  jsonrpc: "2.0",
  error: data === undefined ? { code, message } : { code, message, data },
  id
})

const noop: Effect.Effect<void> = Effect.void

interface One {
  readonly response: Response | undefined
  readonly afterReply: Effect.Effect<void>
}

const reply = (response: Response | undefined): One => ({ response, afterReply: noop })

const idOf = (value: unknown): Id => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null
  const id = (value as { id?: unknown }).id
  return Schema.is(Id)(id) ? id : null
}

/** Why a request's id is not one (see {@link NumericId}), if that is what is wrong with it. */
const badId = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value) || !("id" in value)) return undefined
  const id = (value as { id: unknown }).id
  if (Schema.is(Id)(id)) return undefined
  return typeof id === "number"
    ? `Invalid Request: the id ${String(id)} is not a finite number within ±${Number.MAX_SAFE_INTEGER} ` +
      `(JSON-RPC 2.0 ids are a String, a Number or Null, and this one could not be echoed back as sent); ` +
      `use a string or a smaller integer`
    : `Invalid Request: the id must be a string, a number or null (JSON-RPC 2.0), got ${
      Array.isArray(id) ? "an array" : typeof id
    }`
}

const formatter = SchemaIssue.makeFormatterDefault()
const formatIssue = (error: Schema.SchemaError): string => formatter(error.issue)

const decodeRequest = Schema.decodeUnknownResult(Request, { onExcessProperty: "error" })

const handleValue = (value: unknown, methods: Methods): Effect.Effect<One> =>
  Effect.suspend((): Effect.Effect<One> => {
    const decoded = decodeRequest(value)
    if (Result.isFailure(decoded)) {
      return Effect.succeed(reply(failure(
        idOf(value),
        ErrorCode.InvalidRequest,
        badId(value) ?? "Invalid Request: expected {\"jsonrpc\":\"2.0\",\"method\":<string>,\"params\"?:<object>,\"id\"?:<string|number|null>}",
        formatIssue(decoded.failure)
      )))
    }
    const request = decoded.success
    const notification = request.id === undefined
    const id: Id = request.id ?? null
    const answer = (response: Response): One => reply(notification ? undefined : response)
    const definition = Object.hasOwn(methods, request.method) ? methods[request.method] : undefined
    if (definition === undefined) {
      const available = Object.keys(methods).sort()
      return Effect.succeed(answer(failure(
        id,
        ErrorCode.MethodNotFound,
        `Method not found: "${request.method}" (available: ${available.join(", ")})`,
        { available }
      )))
    }
    let raw: unknown = request.params ?? {}
    if (Array.isArray(raw)) {
      if (raw.length > 0) {
        return Effect.succeed(answer(failure(
          id,
          ErrorCode.InvalidParams,
          `Invalid params for "${request.method}": pass params by name, as an object`
        )))
      }
      raw = {}
    }
    const params = Schema.decodeUnknownResult(definition.params, { onExcessProperty: "error" })(raw)
    if (Result.isFailure(params)) {
      return Effect.succeed(answer(failure(
        id,
        ErrorCode.InvalidParams,
        `Invalid params for "${request.method}": ${formatIssue(params.failure)}`
      )))
    }
    return definition.handle(params.success).pipe(
      Effect.flatMap((result) =>
        Effect.mapError(Schema.encodeUnknownEffect(definition.result)(result), (error) =>
          new RpcError({
            code: ErrorCode.InternalError,
            message: `Internal error: the result of "${request.method}" does not match its Schema: ${formatIssue(error)}`
          }))
      ),
      Effect.matchCause({
        onFailure: (cause): One => {
          const error = Cause.findErrorOption(cause)
          if (error._tag === "Some") {
            const e = error.value
            return answer(failure(id, e.code, e.message, e.data))
          }
          return answer(failure(
            id,
            ErrorCode.InternalError,
            `Internal error in "${request.method}": ${Cause.pretty(cause).split("\n")[0]}`
          ))
        },
        onSuccess: (result): One => ({
          response: notification ? undefined : { jsonrpc: "2.0", result, id },
          afterReply: definition.afterReply === undefined ? noop : definition.afterReply(params.success)
        })
      })
    )
  })

/**
 * Most requests in one batch. A line is at most 1 MiB, but that is room for
 * half a million one-byte requests whose error replies would make a reply of
 * hundreds of megabytes; a longer batch is refused whole.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxBatch = 1000

/**
 * Handles one line: a request or a batch (an array of requests). Malformed
 * JSON gets a `-32700` reply, a value that is not a request `-32600` (an id
 * that is not a string, a finite safe number or null included), an unknown
 * method `-32601`, bad params `-32602`, a failing method its own code, a
 * defect `-32603`. A batch of more than `maxBatch` requests (default
 * {@link maxBatch}) gets one `-32600` error and none of it runs.
 * Notifications get no reply, and neither does a batch made only of them.
 * Never fails.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JsonRpc } from "@refpersys/daemon"
 *
 * const methods = {
 *   ping: JsonRpc.method({
 *     description: "answers pong",
 *     params: Schema.Struct({}),
 *     result: Schema.String,
 *     handle: () => Effect.succeed("pong")
 *   })
 * }
 * const handled = Effect.runSync(JsonRpc.handleLine('{"jsonrpc":"2.0","method":"ping","id":1}', methods))
 * // handled.reply === '{"jsonrpc":"2.0","result":"pong","id":1}'
 * ```
 *
 * @since 0.1.0
 * @category handling
 */
export const handleLine = (
  line: string,
  methods: Methods,
  options: { readonly maxBatch?: number } = {}
): Effect.Effect<Handled> =>
  Effect.suspend((): Effect.Effect<Handled> => {
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error)
      return Effect.succeed({
        reply: JSON.stringify(failure(null, ErrorCode.ParseError, `Parse error: ${detail}`)),
        afterReply: noop,
        requests: 1,
        errors: 1
      })
    }
    if (!Array.isArray(value)) {
      return Effect.map(handleValue(value, methods), (one) => ({
        reply: one.response === undefined ? undefined : JSON.stringify(one.response),
        afterReply: one.afterReply,
        requests: 1,
        errors: one.response !== undefined && "error" in one.response ? 1 : 0
      }))
    }
    if (value.length === 0) {
      return Effect.succeed({
        reply: JSON.stringify(failure(null, ErrorCode.InvalidRequest, "Invalid Request: an empty batch")),
        afterReply: noop,
        requests: 1,
        errors: 1
      })
    }
    const limit = options.maxBatch ?? maxBatch
    if (value.length > limit) {
      return Effect.succeed({
        reply: JSON.stringify(failure(
          null,
          ErrorCode.InvalidRequest,
          `Invalid Request: a batch of ${value.length} requests, more than the limit of ${limit}; none of it ran: send it in smaller batches`
        )),
        afterReply: noop,
        requests: 1,
        errors: 1
      })
    }
    return Effect.map(Effect.forEach(value, (item) => handleValue(item, methods)), (all) => {
      const responses = all.flatMap((one) => one.response === undefined ? [] : [one.response])
      return {
        reply: responses.length === 0 ? undefined : JSON.stringify(responses),
        afterReply: Effect.forEach(all, (one) => one.afterReply, { discard: true }),
        requests: all.length,
        errors: responses.filter((response) => "error" in response).length
      }
    })
  })

/**
 * The standard error for a line longer than the channel accepts.
 *
 * @since 0.1.0
 * @category constructors
 */
export const overlong = (bytes: number, limit: number): string =>
  JSON.stringify(failure(
    null,
    ErrorCode.InvalidRequest,
    `Invalid Request: a line of ${bytes} bytes, longer than the limit of ${limit}; it was discarded`
  ))

/**
 * Encodes a request as one line (without the newline).
 *
 * @example
 * ```ts
 * import { JsonRpc } from "@refpersys/daemon"
 *
 * JsonRpc.requestLine("stats", "ctl-1") // '{"jsonrpc":"2.0","method":"stats","id":"ctl-1"}'
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const requestLine = (method: string, id: Id, params?: Readonly<Record<string, unknown>>): string =>
  JSON.stringify(params === undefined ? { jsonrpc: "2.0", method, id } : { jsonrpc: "2.0", method, params, id })
