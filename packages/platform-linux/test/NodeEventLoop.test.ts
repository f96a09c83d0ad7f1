import { describe, expect, it } from "@effect/vitest"
import { Agenda, EventLoop } from "@refpersys/core"
import { Deferred, Effect, Layer, Logger } from "effect"
import * as NodePlatform from "../src/NodePlatform.js"
import { fifo } from "./fifos.js"

/** A logger that resolves `seen` with the first message containing `text`. */
const loggerWaitingFor = (text: string, seen: Deferred.Deferred<ReadonlyArray<unknown>>) =>
  Logger.layer([
    Logger.make(({ message }) => {
      const parts: ReadonlyArray<unknown> = Array.isArray(message) ? message : [message]
      if (parts.some((p) => typeof p === "string" && p.includes(text))) Deferred.doneUnsafe(seen, Effect.succeed(parts))
    })
  ])

const env = Layer.merge(NodePlatform.layer(), Agenda.layer({ workers: 2 }))

describe("EventLoop on NodePlatform", () => {
  it.live("a real SIGUSR1 makes the loop dump; a real SIGTERM quits it cleanly", () =>
    Effect.gen(function*() {
      const dumped = yield* Deferred.make<ReadonlyArray<unknown>>()
      return yield* Effect.gen(function*() {
        const loop = yield* EventLoop.make()
        process.kill(process.pid, "SIGUSR1")
        const [, dump] = yield* Deferred.await(dumped)
        expect(dump).toBeInstanceOf(EventLoop.Dump)
        expect((dump as EventLoop.Dump).platform.name).toBe("node-portable")
        process.kill(process.pid, "SIGTERM")
        const stopped = yield* loop.awaitStop
        expect(stopped.reason).toBe("quit")
        expect(stopped.cause).toBe("SIGTERM")
        expect(stopped.loop.signals).toEqual({ SIGUSR1: 1, SIGTERM: 1 })
      }).pipe(Effect.provide(env), Effect.provide(loggerWaitingFor("dump (SIGUSR1)", dumped)))
    }))

  it.live("watchFd delivers a real FIFO's readiness to a handler that reads the bytes through NodePlatform.fromPlatform", () =>
    Effect.gen(function*() {
      const f = yield* fifo
      const got = yield* Deferred.make<string>()
      yield* Effect.gen(function*() {
        const loop = yield* EventLoop.make({ signals: [] })
        const node = yield* NodePlatform.fromPlatform
        let text = ""
        yield* loop.watchFd(f.readFd, { read: true }, {
          explanation: "collect what the writer sends until it hangs up",
          handle: (event) =>
            Effect.flatMap(node.read(f.readFd), (bytes) => {
              text += Buffer.from(bytes).toString()
              return event.hup ? Deferred.succeed(got, text) : Effect.void
            })
        })
        f.write("ping ")
        f.write("pong")
        f.closeWriter()
        expect(yield* Deferred.await(got)).toBe("ping pong")
        yield* loop.quit
        expect((yield* loop.awaitStop).loop.events.FdReady).toBeGreaterThanOrEqual(2)
      }).pipe(Effect.provide(env))
    }))
})
