/**
 * Thread tasks: work that runs on a worker thread of a `ThreadAgenda`.
 *
 * A closure cannot cross to another thread, so a thread task names its code
 * instead: a module (a file URL or an absolute path) and an export in it.
 * Arguments, results and typed errors cross as data, each described by an
 * `effect/Schema`: the submitting side encodes the arguments and decodes the
 * result or error, the worker thread decodes the arguments and encodes the
 * result or error.
 *
 * Define a task with {@link make}, implement it with {@link implement} and
 * export the implementation under the task's export name. The module is
 * imported by both sides: the main thread uses its Schemas, the worker thread
 * also runs it. Keep the imports of task modules light (import
 * `@refpersys/threads/ThreadTask` rather than the package index): every
 * worker thread loads them.
 *
 * @example
 * ```ts
 * // tasks.ts
 * import { Effect, Schema } from "effect"
 * import * as ThreadTask from "@refpersys/threads/ThreadTask"
 *
 * class Negative extends Schema.TaggedError<Negative>()("Negative", { n: Schema.Number }) {}
 *
 * export const fib = ThreadTask.implement(
 *   ThreadTask.make({
 *     module: import.meta.url,
 *     export: "fib",
 *     args: Schema.Number,
 *     success: Schema.Number,
 *     failure: Negative
 *   }),
 *   (n) => {
 *     if (n < 0) return Effect.fail(new Negative({ n }))
 *     let [a, b] = [0, 1]
 *     for (let i = 0; i < n; i++) [a, b] = [b, a + b]
 *     return Effect.succeed(a)
 *   }
 * )
 * ```
 *
 * @since 0.1.0
 */
import { InvalidOptions } from "@refpersys/core/AgendaError"
import type * as Effect from "effect/Effect"
import { pipeArguments, type Pipeable } from "effect/Pipeable"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import type { ThreadContext } from "./ThreadContext.js"

/**
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: unique symbol = Symbol.for("@refpersys/threads/ThreadTask")

/**
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * A task definition: where its code lives and how its data crosses threads.
 * `Args` are the decoded arguments, `A` the result, `E` the typed error.
 *
 * @since 0.1.0
 * @category models
 */
export interface ThreadTask<Args, A, E = never> extends Pipeable {
  readonly [TypeId]: TypeId
  /** The module's file URL. */
  readonly module: string
  /** The name the implementation is exported under. */
  readonly export: string
  readonly args: Schema.Codec<Args, any>
  readonly success: Schema.Codec<A, any>
  readonly failure: Schema.Codec<E, any>
}

/**
 * What an implementation may return: an Effect (which may use the
 * {@link ThreadContext} of its thread), a plain value or a promise.
 *
 * @since 0.1.0
 * @category models
 */
export type Result<A, E> = Effect.Effect<A, E, ThreadContext> | A | PromiseLike<A>

/**
 * A task definition with its code. Export it from the task's module under
 * the task's export name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Implementation<Args, A, E = never> extends ThreadTask<Args, A, E> {
  readonly run: (args: Args) => Result<A, E>
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<Args, ArgsI, A, AI, E, EI> {
  /**
   * The module that exports the implementation: a file URL (`import.meta.url`
   * of the module itself, or `new URL("./tasks.js", import.meta.url)`), a
   * `URL`, or an absolute path.
   */
  readonly module: string | URL
  readonly export: string
  readonly args: Schema.Codec<Args, ArgsI>
  readonly success: Schema.Codec<A, AI>
  /** The typed error; default `Schema.Never` (the task cannot fail). */
  readonly failure?: Schema.Codec<E, EI>
}

const Proto = {
  [TypeId]: TypeId,
  pipe() {
    return pipeArguments(this, arguments)
  }
}

const moduleUrl = (module: unknown): string => {
  if (module instanceof URL) return module.href
  if (typeof module === "string") {
    if (module.startsWith("file:")) return new URL(module).href
    if (path.isAbsolute(module)) return pathToFileURL(module).href
  }
  throw new InvalidOptions({
    option: "module",
    value: module,
    expected: "a file URL or an absolute path, e.g. import.meta.url or new URL(\"./tasks.js\", import.meta.url)"
  })
}

/**
 * Defines a task. Throws `InvalidOptions` when `module` is neither a file URL
 * nor an absolute path, or `export` is empty: both are programming errors
 * found when the module loads.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import * as ThreadTask from "@refpersys/threads/ThreadTask"
 *
 * const Square = ThreadTask.make({
 *   module: new URL("./square.js", import.meta.url),
 *   export: "square",
 *   args: Schema.Number,
 *   success: Schema.Number
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <Args, ArgsI, A, AI, E = never, EI = never>(
  options: Options<Args, ArgsI, A, AI, E, EI>
): ThreadTask<Args, A, E> => {
  if (typeof options.export !== "string" || options.export.length === 0) {
    throw new InvalidOptions({ option: "export", value: options.export, expected: "the non-empty name of an export" })
  }
  const task = Object.create(Proto)
  task.module = moduleUrl(options.module)
  task.export = options.export
  task.args = options.args
  task.success = options.success
  task.failure = options.failure ?? Schema.Never
  return task
}

/**
 * Gives a task its code. The result is also a task definition, so a module
 * can define and implement a task in one place and both sides import it.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import * as ThreadTask from "@refpersys/threads/ThreadTask"
 *
 * export const square = ThreadTask.implement(
 *   ThreadTask.make({ module: import.meta.url, export: "square", args: Schema.Number, success: Schema.Number }),
 *   (n) => Effect.succeed(n * n)
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const implement = <Args, A, E>(
  task: ThreadTask<Args, A, E>,
  run: (args: Args) => Result<A, E>
): Implementation<Args, A, E> => {
  const impl = Object.create(Proto)
  impl.module = task.module
  impl.export = task.export
  impl.args = task.args
  impl.success = task.success
  impl.failure = task.failure
  impl.run = run
  return impl
}

/**
 * Whether a value is a task definition (implemented or not).
 *
 * @since 0.1.0
 * @category guards
 */
export const isThreadTask = (u: unknown): u is ThreadTask<unknown, unknown, unknown> =>
  Predicate.hasProperty(u, TypeId)

/**
 * Whether a value is a task implementation.
 *
 * @since 0.1.0
 * @category guards
 */
export const isImplementation = (u: unknown): u is Implementation<unknown, unknown, unknown> =>
  isThreadTask(u) && typeof (u as { readonly run?: unknown }).run === "function"
