import { it } from "@effect/vitest"
import { describe, expect } from "vitest"
import { Effect, Ref, Result, Schema } from "effect"
import * as JsonRpc from "../src/JsonRpc.js"

const make = Effect.gen(function*() {
  const after = yield* Ref.make<Array<string>>([])
  const calls = yield* Ref.make(0)
  const methods: JsonRpc.Methods = {
    add: JsonRpc.method({
      description: "adds",
      params: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
      result: Schema.Number,
      handle: ({ a, b }) => Effect.as(Ref.update(calls, (n) => n + 1), a + b)
    }),
    ping: JsonRpc.method({
      description: "pong",
      params: Schema.Struct({}),
      result: Schema.String,
      handle: () => Effect.as(Ref.update(calls, (n) => n + 1), "pong"),
      afterReply: () => Ref.update(after, (xs) => [...xs, "ping"])
    }),
    refuse: JsonRpc.method({
      description: "always refuses",
      params: Schema.Struct({}),
      result: Schema.Void,
      handle: () => Effect.fail(new JsonRpc.RpcError({ code: -32001, message: "not now", data: { retry: true } }))
    }),
    crash: JsonRpc.method({
      description: "dies",
      params: Schema.Struct({}),
      result: Schema.Void,
      handle: () => Effect.die(new Error("boom"))
    }),
    lie: JsonRpc.method({
      description: "returns what its Schema refuses",
      params: Schema.Struct({}),
      result: Schema.Number.check(Schema.isGreaterThan(0)),
      handle: () => Effect.succeed(-1)
    })
  }
  return { methods, after, calls }
})

const reply = (handled: JsonRpc.Handled): unknown => handled.reply === undefined ? undefined : JSON.parse(handled.reply)

describe("JsonRpc.handleLine", () => {
  it.effect("answers a request with its result and id", () =>
    Effect.gen(function*() {
      const { methods } = yield* make
      const handled = yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"add","params":{"a":2,"b":3},"id":7}', methods)
      expect(reply(handled)).toEqual({ jsonrpc: "2.0", result: 5, id: 7 })
      expect(handled.requests).toBe(1)
      expect(handled.errors).toBe(0)
    }))

  it.effect("keeps string and null ids, and treats absent params as {}", () =>
    Effect.gen(function*() {
      const { methods } = yield* make
      expect(reply(yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"ping","id":"a-1"}', methods)))
        .toEqual({ jsonrpc: "2.0", result: "pong", id: "a-1" })
      expect(reply(yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"ping","params":[],"id":null}', methods)))
        .toEqual({ jsonrpc: "2.0", result: "pong", id: null })
    }))

  it.effect("runs a notification without replying", () =>
    Effect.gen(function*() {
      const { calls, methods } = yield* make
      const handled = yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"ping"}', methods)
      expect(handled.reply).toBeUndefined()
      expect(yield* Ref.get(calls)).toBe(1)
      const unknown = yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"nope"}', methods)
      expect(unknown.reply).toBeUndefined()
    }))

  it.effect("leaves afterReply to the caller", () =>
    Effect.gen(function*() {
      const { after, methods } = yield* make
      const handled = yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"ping","id":1}', methods)
      expect(yield* Ref.get(after)).toEqual([])
      yield* handled.afterReply
      expect(yield* Ref.get(after)).toEqual(["ping"])
    }))

  it.effect("-32700 for malformed JSON, with a null id", () =>
    Effect.gen(function*() {
      const { methods } = yield* make
      const handled = yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"ping","id":3', methods)
      const r = reply(handled) as { error: { code: number; message: string }; id: unknown }
      expect(r.error.code).toBe(-32700)
      expect(r.error.message).toMatch(/^Parse error/)
      expect(r.id).toBeNull()
      expect(handled.errors).toBe(1)
    }))

  it.effect("-32600 for a value that is not a request, keeping a readable id", () =>
    Effect.gen(function*() {
      const { methods } = yield* make
      const cases = [
        ["42", null],
        ['{"jsonrpc":"1.0","method":"ping","id":4}', 4],
        ['{"jsonrpc":"2.0","id":"x"}', "x"],
        ['{"jsonrpc":"2.0","method":7,"id":5}', 5],
        ['{"jsonrpc":"2.0","method":"ping","id":{"no":1}}', null],
        ['{"jsonrpc":"2.0","method":"ping","parmas":{},"id":6}', 6]
      ] as const
      for (const [line, id] of cases) {
        const r = reply(yield* JsonRpc.handleLine(line, methods)) as { error: { code: number }; id: unknown }
        expect(r.error.code, line).toBe(-32600)
        expect(r.id, line).toBe(id)
      }
    }))

  it.effect("-32601 for an unknown method, listing the known ones", () =>
    Effect.gen(function*() {
      const { methods } = yield* make
      const r = reply(yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"toString","id":1}', methods)) as {
        error: { code: number; message: string; data: { available: Array<string> } }
      }
      expect(r.error.code).toBe(-32601)
      expect(r.error.message).toContain('"toString"')
      expect(r.error.data.available).toEqual(["add", "crash", "lie", "ping", "refuse"])
    }))

  it.effect("-32602 for params of the wrong shape, unknown names or positional params", () =>
    Effect.gen(function*() {
      const { calls, methods } = yield* make
      for (
        const params of ['{"a":1}', '{"a":1,"b":"2"}', '{"a":1,"b":2,"c":3}', "[1,2]"]
      ) {
        const r = reply(yield* JsonRpc.handleLine(`{"jsonrpc":"2.0","method":"add","params":${params},"id":1}`, methods)) as {
          error: { code: number; message: string }
        }
        expect(r.error.code, params).toBe(-32602)
        expect(r.error.message, params).toContain('"add"')
      }
      expect(yield* Ref.get(calls)).toBe(0)
    }))

  it.effect("a method's RpcError becomes the error; a defect or a bad result -32603", () =>
    Effect.gen(function*() {
      const { methods } = yield* make
      expect(reply(yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"refuse","id":1}', methods))).toEqual({
        jsonrpc: "2.0",
        error: { code: -32001, message: "not now", data: { retry: true } },
        id: 1
      })
      for (const method of ["crash", "lie"]) {
        const r = reply(yield* JsonRpc.handleLine(`{"jsonrpc":"2.0","method":"${method}","id":2}`, methods)) as {
          error: { code: number }
        }
        expect(r.error.code, method).toBe(-32603)
      }
    }))

  it.effect("a batch answers each request in order, skipping notifications", () =>
    Effect.gen(function*() {
      const { after, methods } = yield* make
      const handled = yield* JsonRpc.handleLine(
        '[{"jsonrpc":"2.0","method":"add","params":{"a":1,"b":1},"id":1},{"jsonrpc":"2.0","method":"ping"},' +
          '{"jsonrpc":"2.0","method":"nope","id":2},{"jsonrpc":"2.0","method":"ping","id":3}]',
        methods
      )
      const r = reply(handled) as Array<{ id: unknown; result?: unknown; error?: { code: number } }>
      expect(r.map((x) => x.id)).toEqual([1, 2, 3])
      expect(r[0].result).toBe(2)
      expect(r[1].error?.code).toBe(-32601)
      expect(r[2].result).toBe("pong")
      expect(handled.requests).toBe(4)
      expect(handled.errors).toBe(1)
      yield* handled.afterReply
      expect(yield* Ref.get(after)).toEqual(["ping", "ping"])
    }))

  it.effect("a batch of notifications gets no reply; an empty batch gets -32600", () =>
    Effect.gen(function*() {
      const { methods } = yield* make
      expect((yield* JsonRpc.handleLine('[{"jsonrpc":"2.0","method":"ping"}]', methods)).reply).toBeUndefined()
      const r = reply(yield* JsonRpc.handleLine("[]", methods)) as { error: { code: number }; id: unknown }
      expect(r.error.code).toBe(-32600)
      expect(r.id).toBeNull()
    }))

  it.effect("-32600 with a null id for an id that is not finite or not safe (1e400 parses as Infinity), without running it", () =>
    Effect.gen(function*() {
      const { calls, methods } = yield* make
      for (const id of ["1e400", "-1e400", "12345678901234567890"]) {
        const handled = yield* JsonRpc.handleLine(`{"jsonrpc":"2.0","method":"ping","id":${id}}`, methods)
        const r = reply(handled) as { error: { code: number; message: string }; id: unknown }
        expect(r.id, id).toBeNull()
        expect(r.error.code, id).toBe(-32600)
        expect(r.error.message, id).toContain("is not a finite number within ±9007199254740991")
        expect(r.error.message, id).toContain("JSON-RPC 2.0 ids are a String, a Number or Null")
        expect(handled.errors).toBe(1)
      }
      expect(yield* Ref.get(calls)).toBe(0)
      // The largest safe integer and a fraction are still ids.
      expect(reply(yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"ping","id":9007199254740991}', methods)))
        .toEqual({ jsonrpc: "2.0", result: "pong", id: 9007199254740991 })
      expect(reply(yield* JsonRpc.handleLine('{"jsonrpc":"2.0","method":"ping","id":-2.5}', methods)))
        .toEqual({ jsonrpc: "2.0", result: "pong", id: -2.5 })
      const inBatch = reply(yield* JsonRpc.handleLine('[{"jsonrpc":"2.0","method":"ping","id":1e400}]', methods))
      expect(inBatch).toMatchObject([{ error: { code: -32600 }, id: null }])
    }))

  it.effect("a batch over the limit gets one -32600 naming the limit, and none of it runs", () =>
    Effect.gen(function*() {
      const { calls, methods } = yield* make
      // Half a million one-byte items in one 1 MiB line: one short error, not a reply per item.
      const flood = `[${Array(524_286).fill("1").join(",")}]`
      const refused = yield* JsonRpc.handleLine(flood, methods)
      expect(refused.reply!.length).toBeLessThan(300)
      expect(JSON.parse(refused.reply!)).toMatchObject({ error: { code: -32600 }, id: null })
      // The documented limit.
      expect(JsonRpc.maxBatch).toBe(1000)
      const request = '{"jsonrpc":"2.0","method":"ping","id":1}'
      const over = `[${Array(JsonRpc.maxBatch + 1).fill(request).join(",")}]`
      const handled = yield* JsonRpc.handleLine(over, methods)
      const r = reply(handled) as { error: { code: number; message: string }; id: unknown }
      expect(Array.isArray(r)).toBe(false)
      expect(r.id).toBeNull()
      expect(r.error.code).toBe(-32600)
      expect(r.error.message).toContain(`a batch of ${JsonRpc.maxBatch + 1} requests, more than the limit of ${JsonRpc.maxBatch}`)
      expect(handled).toMatchObject({ requests: 1, errors: 1 })
      expect(yield* Ref.get(calls)).toBe(0)
      // At the limit, every request runs.
      const full = yield* JsonRpc.handleLine(`[${Array(JsonRpc.maxBatch).fill(request).join(",")}]`, methods)
      expect((reply(full) as Array<unknown>)).toHaveLength(JsonRpc.maxBatch)
      expect(yield* Ref.get(calls)).toBe(JsonRpc.maxBatch)
      // A smaller limit can be given.
      const small = reply(yield* JsonRpc.handleLine(`[${request},${request}]`, methods, { maxBatch: 1 }))
      expect(small).toMatchObject({ error: { code: -32600 }, id: null })
    }))

  it.effect("every reply decodes as a Response", () =>
    Effect.gen(function*() {
      const { methods } = yield* make
      for (
        const line of [
          '{"jsonrpc":"2.0","method":"ping","id":1}',
          "{",
          '{"jsonrpc":"2.0","method":"nope","id":1}',
          '{"jsonrpc":"2.0","method":"refuse","id":"r"}'
        ]
      ) {
        const handled = yield* JsonRpc.handleLine(line, methods)
        expect(Result.isSuccess(JsonRpc.decodeResponse(reply(handled))), line).toBe(true)
      }
    }))

  it("decodeResponse refuses a reply with neither or both of result and error", () => {
    expect(Result.isFailure(JsonRpc.decodeResponse({ jsonrpc: "2.0", id: 1 }))).toBe(true)
    expect(Result.isFailure(JsonRpc.decodeResponse({ jsonrpc: "2.0", result: 1, error: { code: 1, message: "x" }, id: 1 })))
      .toBe(true)
    expect(Result.isFailure(JsonRpc.decodeResponse({ jsonrpc: "2.0", result: 1, id: 1, extra: true }))).toBe(true)
    expect(Result.isFailure(JsonRpc.decodeResponse("nope"))).toBe(true)
    const failure = JsonRpc.decodeResponse({ jsonrpc: "2.0", error: { code: -32601, message: "Method not found" }, id: "a" })
    expect(Result.isSuccess(failure) && "error" in failure.success).toBe(true)
  })
})

describe("JsonRpc helpers", () => {
  it("requestLine encodes a request, with params when given", () => {
    expect(JSON.parse(JsonRpc.requestLine("stats", "c-1"))).toEqual({ jsonrpc: "2.0", method: "stats", id: "c-1" })
    const line = JsonRpc.requestLine("submit", 2, { count: 3 })
    expect(Schema.decodeUnknownSync(JsonRpc.Request)(JSON.parse(line))).toEqual({
      jsonrpc: "2.0",
      method: "submit",
      params: { count: 3 },
      id: 2
    })
  })

  it("failure and overlong build error responses", () => {
    expect(JsonRpc.failure(1, JsonRpc.ErrorCode.ServerError, "busy")).toEqual({
      jsonrpc: "2.0",
      error: { code: -32000, message: "busy" },
      id: 1
    })
    const r = JSON.parse(JsonRpc.overlong(2000, 1024))
    expect(r.error.code).toBe(JsonRpc.ErrorCode.InvalidRequest)
    expect(r.error.message).toContain("2000")
    expect(r.id).toBeNull()
  })
})
