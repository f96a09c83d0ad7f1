import { Cause, Effect, Option, Stream } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Children from "../src/internal/children.js"
import type * as Native from "../src/internal/native.js"

/**
 * Pulls one element at a time from a stream, keeping the rest of a batch.
 * The end of the stream is `Option.none()` and a stream error `Option.some(e)`.
 */
export const puller = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.map(Stream.toPull(stream), (pull) => {
    const buffer: Array<A> = []
    const batch = Effect.mapError(
      pull,
      (e): Option.Option<E> => Cause.isDone(e) ? Option.none() : Option.some(e as E)
    )
    const next: Effect.Effect<A, Option.Option<E>> = Effect.suspend(() =>
      buffer.length > 0
        ? Effect.succeed(buffer.shift() as A)
        : Effect.flatMap(batch, (chunk) => {
          buffer.push(...chunk)
          return next
        })
    )
    return next
  })

/** Waits for a child to exit, through Node's own event. */
export const exited = (child: ChildProcess) =>
  Effect.callback<number | null>((resume) => {
    if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

/** A real child that exits with `code`, tracked so every platform reports it; its pid. */
export const realChildExit = (code: number) =>
  Effect.sync(() => {
    const child = spawn(process.execPath, ["-e", `process.exit(${code})`], { stdio: "ignore" })
    Children.trackChild(child)
    return child.pid!
  })

/** A pipe whose ends are closed with the scope unless the test closed them first. */
export const pipeInScope = (a: Native.Addon) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const { readFd, writeFd } = a.pipe()
      const open = { read: true, write: true }
      return {
        readFd,
        writeFd,
        closeRead: () => {
          if (open.read) a.close(readFd)
          open.read = false
        },
        closeWrite: () => {
          if (open.write) a.close(writeFd)
          open.write = false
        }
      }
    }),
    (p) =>
      Effect.sync(() => {
        p.closeRead()
        p.closeWrite()
      })
  )
