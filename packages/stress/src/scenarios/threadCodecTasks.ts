/**
 * The thread task of the `thread-codec-faults` scenario. Worker threads
 * import this module from `dist` (the scenario passes its URL); the
 * scenario imports it for the definition and its Schemas.
 *
 * @internal
 */
import { ThreadTask } from "@refpersys/threads"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
import * as Schema from "effect/Schema"

/** This module as built: next to it in `dist`, or in `dist` when it runs from `src` (tests). */
const builtModule = (): string => {
  const candidates = [
    new URL("./threadCodecTasks.js", import.meta.url),
    new URL("../../dist/scenarios/threadCodecTasks.js", import.meta.url)
  ]
  return (candidates.find((url) => fs.existsSync(fileURLToPath(url))) ?? candidates[0]).href
}

/** A typed error whose field takes anything, so a function passes its Schema. */
export class Carrying extends Schema.TaggedError<Carrying>()("Carrying", { payload: Schema.Any }) {}

/** What a tasklet of the scenario does. */
export const Kind = Schema.Literals(["ok", "fail", "function", "symbol", "errorWithFunction"])

/**
 * `ok` returns `2n`; `fail` fails with a cloneable `Carrying`; `function`
 * returns a value holding a function at `nested[1].callback`; `symbol`
 * returns a Symbol; `errorWithFunction` fails with `Carrying` holding a
 * function at `payload.retry`. Its arguments pass through `Schema.Any`, so
 * the scenario can also send arguments that cannot be cloned.
 */
export const codecFault = ThreadTask.implement(
  ThreadTask.make({
    module: builtModule(),
    export: "codecFault",
    args: Schema.Struct({ kind: Kind, n: Schema.Number, extra: Schema.optional(Schema.Any) }),
    success: Schema.Any,
    failure: Carrying
  }),
  ({ kind, n }) => {
    switch (kind) {
      case "ok":
        return Effect.succeed(2 * n)
      case "fail":
        return Effect.fail(new Carrying({ payload: n }))
      case "function":
        return Effect.succeed({ n, nested: [1, { callback: () => n }] })
      case "symbol":
        return Effect.succeed(Symbol(`token ${n}`))
      case "errorWithFunction":
        return Effect.fail(new Carrying({ payload: { retry: () => n } }))
    }
  }
)
