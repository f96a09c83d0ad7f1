/**
 * The control channel: a FIFO pair in the runtime directory, as in the
 * original runtime. `rps.cmd` takes command bytes (`D`, `G`, `Q`, `X`) and
 * JSON-RPC 2.0 requests, one per line; `rps.out` carries the replies, one
 * per line.
 *
 * Both FIFOs are opened read-write and non-blocking. Holding the write side
 * of `rps.cmd` means it never reads end-of-file as writers come and go;
 * holding the read side of `rps.out` means writing a reply never blocks or
 * fails for want of a reader. (Opening a FIFO read-write is Linux behaviour;
 * POSIX leaves it undefined.)
 *
 * `rps.cmd` is read through the event loop's fd readiness
 * (`EventLoop.watchFd`). Command bytes are sent on the loop's command
 * channel, so they reach the same bindings as the self-pipe (an unknown byte
 * is counted by the loop's `unknownCommands`); JSON-RPC lines go to the
 * methods given to {@link make}, each in its own fiber.
 *
 * When nobody reads `rps.out`, replies pile up in it; when it is full, the
 * channel keeps the unwritten rest and retries, and after two seconds
 * without progress it discards what is in the FIFO (stale replies nobody
 * wanted) to make room, counting what it dropped. At most 4 MiB of replies
 * wait besides the newest one (`maxPendingBytes`); the oldest are dropped
 * first and counted in `repliesDropped`.
 *
 * @since 0.1.0
 */
import { type AgendaError, EventLoop, type EventLoopError, type Platform } from "@refpersys/core"
import { NodePlatform } from "@refpersys/platform-linux"
import * as fs from "node:fs"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Framing from "./Framing.js"
import { defaultMaxPendingBytes, ReplyWriter } from "./internal/replyWriter.js"
import * as JsonRpc from "./JsonRpc.js"
import * as RuntimeDir from "./RuntimeDir.js"

/**
 * Counters of the control channel.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ControlStats = Schema.Struct({
  /** Bytes read from `rps.cmd`. */
  bytesRead: Schema.Number,
  /** Command bytes passed to the event loop (known or not). */
  commandBytes: Schema.Number,
  /** Command bytes the loop's command channel refused (full). */
  commandBytesRefused: Schema.Number,
  /** JSON-RPC requests handled, notifications included. */
  requests: Schema.Number,
  /** Error responses sent. */
  errors: Schema.Number,
  /** Lines longer than the limit, discarded. */
  overlong: Schema.Number,
  /** Replies sent to `rps.out` (written, waiting, or dropped). */
  replies: Schema.Number,
  /**
   * Replies never written in full: the oldest waiting ones, dropped to keep
   * the reply buffer within its limit, and those lost to a write error.
   */
  repliesDropped: Schema.Number,
  /** Reply bytes waiting for room in `rps.out` (at most 4 MiB besides the newest reply). */
  replyBytesWaiting: Schema.Number,
  /** Reply bytes discarded: stale ones emptied from a full `rps.out` nobody was reading, and dropped replies. */
  discardedBytes: Schema.Number,
  /** Times the FIFOs were reopened (`SIGHUP`). */
  reopens: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type ControlStats = typeof ControlStats.Type

/**
 * A control channel operation failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ControlError extends Data.TaggedError("ControlError")<{
  readonly operation: string
  readonly path: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.operation} ${this.path}: ${this.detail}`
  }
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly files: RuntimeDir.Files
  readonly methods: JsonRpc.Methods
  /** Longest JSON-RPC line in bytes (default 1 MiB). */
  readonly maxLine?: number
  /** How long a full `rps.out` may make no progress before its content is discarded (default 2,000 ms). */
  readonly stallMs?: number
  /**
   * Most reply bytes kept waiting for a full `rps.out`, besides the newest
   * reply (default 4 MiB); the oldest are dropped first.
   */
  readonly maxPendingBytes?: number
}

/**
 * An open control channel.
 *
 * @since 0.1.0
 * @category models
 */
export interface Control {
  readonly files: RuntimeDir.Files
  readonly stats: () => ControlStats
  /**
   * Closes both FIFOs, makes them again if they were removed, and reopens
   * them (what `SIGHUP` does). Succeeds with the paths it had to recreate.
   */
  readonly reopen: Effect.Effect<ReadonlyArray<string>, ControlError | RuntimeDir.RuntimeDirError | WatchError>
}

/**
 * Why watching `rps.cmd` through the event loop failed.
 *
 * @since 0.1.0
 * @category errors
 */
export type WatchError =
  | Platform.PlatformError
  | EventLoopError.TooManyHandlers
  | EventLoopError.HandlerConflict
  | EventLoopError.LoopStopped
  | AgendaError.InvalidOptions

const { O_NONBLOCK, O_RDWR } = fs.constants

/**
 * Opens a FIFO of the runtime directory, trusted only when the opened fd
 * shows a FIFO of ours with mode 0600 (`RuntimeDir.openFifo`: `O_NOFOLLOW`,
 * then `fstat`). A FIFO someone else made would let them send commands or
 * read replies: refused with reason `Untrusted`.
 */
const openFifo = (where: string): Effect.Effect<number, ControlError | RuntimeDir.RuntimeDirError> =>
  RuntimeDir.openFifo(where, O_RDWR | O_NONBLOCK).pipe(
    Effect.catchIf(
      (error) => error.reason === "System",
      (error) => Effect.fail(new ControlError({ operation: "open", path: where, detail: error.detail }))
    )
  )

const codeOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code

const READ_CHUNK = 64 * 1024

/**
 * Opens the control channel for the scope, on the FIFOs of `files` (which
 * must exist; see `RuntimeDir.acquire`). A FIFO that is not ours (another
 * owner, a mode other than 0600, a symbolic link) is refused with
 * `RuntimeDirError` reason `Untrusted`. Needs the `EventLoop` and its
 * `Platform`: on the portable platform the watch reads the FIFO itself, and
 * the channel takes the bytes from it.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Control, JsonRpc, RuntimeDir } from "@refpersys/daemon"
 *
 * const serve = Effect.gen(function*() {
 *   const { files } = yield* RuntimeDir.acquire("/tmp/rps-example")
 *   yield* Control.make({
 *     files,
 *     methods: {
 *       ping: JsonRpc.method({
 *         description: "answers pong",
 *         params: Schema.Struct({}),
 *         result: Schema.String,
 *         handle: () => Effect.succeed("pong")
 *       })
 *     }
 *   })
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<
  Control,
  ControlError | RuntimeDir.RuntimeDirError | WatchError,
  EventLoop.EventLoop | Platform.Platform | Scope.Scope
> =>
  Effect.gen(function*() {
    const loop = yield* EventLoop.EventLoop
    const node = yield* Effect.option(NodePlatform.fromPlatform)
    const scope = yield* Effect.scope
    const requests = yield* FiberSet.make<void, never>()
    const { files, methods } = options
    const framer = new Framing.Framer(options.maxLine)
    const counters = {
      bytesRead: 0,
      commandBytes: 0,
      commandBytesRefused: 0,
      requests: 0,
      errors: 0,
      overlong: 0,
      reopens: 0
    }
    const readBuffer = Buffer.allocUnsafe(READ_CHUNK)

    interface Opened {
      readonly cmdFd: number
      readonly scope: Scope.Closeable
    }
    let opened: Opened | undefined = undefined
    let writer: ReplyWriter | undefined = undefined

    const reply = (line: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (writer === undefined) return Effect.void
        writer.write(line)
        return writer.blocked ? retryLater : Effect.void
      })

    // One retry fiber at a time keeps a blocked writer going; it ends when
    // everything is written.
    const retryLater: Effect.Effect<void> = Effect.suspend(() => {
      const w = writer
      if (w === undefined || w.retrying) return Effect.void
      w.retrying = true
      const attempt: Effect.Effect<void> = Effect.andThen(
        Effect.sleep("20 millis"),
        Effect.suspend(() => (w.flush() ? Effect.sync(() => (w.retrying = false)) : attempt))
      )
      return Effect.asVoid(FiberSet.run(requests, Effect.ensuring(attempt, Effect.sync(() => (w.retrying = false)))))
    })

    const serve = (text: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        const handled = yield* JsonRpc.handleLine(text, methods)
        counters.requests += handled.requests
        counters.errors += handled.errors
        if (handled.reply !== undefined) yield* reply(handled.reply)
        yield* handled.afterReply
      })

    const readAvailable = (fd: number): Effect.Effect<Uint8Array, Platform.PlatformError> => {
      if (Option.isSome(node)) return node.value.read(fd)
      return Effect.sync(() => {
        const chunks: Array<Buffer> = []
        let total = 0
        // A bounded read per readiness report keeps the loop fair; the watch
        // is level-triggered, so what is left reports again.
        while (total < 4 * READ_CHUNK) {
          let n: number
          try {
            n = fs.readSync(fd, readBuffer, 0, readBuffer.length, null)
          } catch (error) {
            if (codeOf(error) === "EAGAIN") break
            throw error
          }
          if (n <= 0) break
          chunks.push(Buffer.from(readBuffer.subarray(0, n)))
          total += n
        }
        return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
      })
    }

    const onReadable = (fd: number): Effect.Effect<void, Platform.PlatformError> =>
      Effect.gen(function*() {
        const bytes = yield* readAvailable(fd)
        if (bytes.length === 0) return
        counters.bytesRead += bytes.length
        for (const input of framer.feed(bytes)) {
          switch (input._tag) {
            case "Command": {
              counters.commandBytes++
              yield* loop.send(input.byte).pipe(
                Effect.catch((error) => {
                  counters.commandBytesRefused++
                  // A flood would log once per byte; every power of two is enough.
                  const n = counters.commandBytesRefused
                  return (n & (n - 1)) === 0
                    ? Effect.logWarning(`control: ${n} command byte(s) not delivered so far: ${error.message}`)
                    : Effect.void
                })
              )
              break
            }
            case "Line":
              yield* FiberSet.run(requests, serve(input.text))
              break
            case "Overlong":
              counters.overlong++
              counters.requests++
              counters.errors++
              yield* reply(JsonRpc.overlong(input.bytes, framer.maxLine))
              break
          }
        }
      })

    const open = Effect.gen(function*() {
      const cmdFd = yield* openFifo(files.cmd)
      const outFd = yield* openFifo(files.out).pipe(Effect.tapError(() => Effect.sync(() => fs.closeSync(cmdFd))))
      const watchScope = yield* Scope.fork(scope, "sequential")
      yield* loop.watchFd(cmdFd, { read: true }, {
        explanation: `control: read command bytes and JSON-RPC requests from ${files.cmd}`,
        handle: () => onReadable(cmdFd)
      }).pipe(
        Scope.provide(watchScope),
        Effect.tapError(() =>
          Effect.andThen(
            Scope.close(watchScope, Exit.void),
            Effect.sync(() => {
              fs.closeSync(cmdFd)
              fs.closeSync(outFd)
            })
          )
        )
      )
      opened = { cmdFd, scope: watchScope }
      if (writer === undefined) {
        writer = new ReplyWriter(outFd, options.stallMs ?? 2000, options.maxPendingBytes ?? defaultMaxPendingBytes)
      }
      else {
        // Replies not yet written go to the new FIFO.
        writer.fd = outFd
        if (!writer.flush()) yield* retryLater
      }
    })

    const close = Effect.suspend(() => {
      const current = opened
      const w = writer
      opened = undefined
      return current === undefined ? Effect.void : Effect.andThen(
        Scope.close(current.scope, Exit.void),
        Effect.sync(() => {
          fs.closeSync(current.cmdFd)
          if (w !== undefined && w.fd >= 0) {
            fs.closeSync(w.fd)
            // Until the reopen, replies wait instead of going to a closed
            // fd number that something else may reuse.
            w.fd = -1
          }
        })
      )
    })

    yield* open
    yield* Effect.addFinalizer(() => close)

    const lock = yield* Semaphore.make(1)
    const reopen = lock.withPermits(1)(Effect.gen(function*() {
      yield* close
      framer.reset()
      const recreated: Array<string> = []
      if (yield* RuntimeDir.ensureFifo(files.cmd)) recreated.push(files.cmd)
      if (yield* RuntimeDir.ensureFifo(files.out)) recreated.push(files.out)
      yield* open
      counters.reopens++
      return recreated
    }))

    return {
      files,
      reopen,
      stats: () => ({
        ...counters,
        replies: writer?.replies ?? 0,
        repliesDropped: writer?.repliesDropped ?? 0,
        replyBytesWaiting: writer?.waiting ?? 0,
        discardedBytes: writer?.discardedBytes ?? 0
      })
    }
  })
