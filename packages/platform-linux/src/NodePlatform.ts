/**
 * The portable Node platform: the `Platform` contract on plain Node APIs,
 * for systems (or builds) without the Linux native addon. Its `info.name`
 * is `"node-portable"`.
 *
 * What it does, and what it cannot do:
 *
 * - **Signals** are Node's `process.on(name)` listeners, installed when
 *   `signals` returns and removed when its scope closes. Node cannot name
 *   real-time signals, so `info.realtimeSignals` is `false` and claiming
 *   `SIGRTMIN+n` / `SIGRTMAX-n` fails with `InvalidSignal` (use
 *   `LinuxPlatform`). Removing Node's last listener resets a signal to its
 *   default disposition; for `SIGPIPE`, `SIGXFSZ` (ignored by Node) and
 *   `SIGUSR1` (the inspector's signal) that would kill the process, so once
 *   claimed they keep a no-op listener for the life of the process (a later
 *   `SIGUSR1` no longer starts the inspector).
 * - **The timer** sleeps on the program's `Clock` (so `TestClock` drives it)
 *   and never fires before its deadline: an early wake-up of `setTimeout`
 *   sleeps again. Each `timer` acquisition is an independent timer.
 * - **Commands** are an in-process queue; `unsafeSend` works from any
 *   callback on the main thread (not from other threads).
 * - **Watching** reads the fd through a Node stream, because Node offers no
 *   readiness without reading. So the layer reads the bytes itself and holds
 *   them (up to `bufferLimit`, after which it stops reading and the writer
 *   feels the pipe fill); take them with {@link NodePlatform.read}. A `read` report is
 *   sent when bytes arrive and none are reported yet: after one report the
 *   next comes only once {@link NodePlatform.read} took the bytes. End of file reports
 *   `hup` (with `read` if bytes are still held) and ends the stream; the
 *   held bytes stay readable until the watch's scope closes, and a new watch
 *   of the fd starts with them. Write readiness is not offered (a watch with
 *   `write: true` fails with `Unsupported`). Pipes and FIFOs are reopened
 *   through `/dev/fd/N`, so the watch reads from its own file description
 *   and never closes or changes the caller's fd. Sockets cannot be reopened:
 *   the fd itself is handed to Node, which sets it non-blocking and **closes
 *   it** when the watch ends (hang-up, error or scope). Terminals and other
 *   devices fail with `Unsupported`; regular files, directories, block
 *   devices and closed fds with `BadFd`. A FIFO that never had a writer
 *   reports `hup` at once (it reads as end of file).
 * - **Child exits**: Node reaps its own children, so the platform cannot see
 *   them by itself; pass each child to {@link trackChild} and its exit is
 *   reported on the `childExits` of every open node-portable platform.
 *
 * @since 0.1.0
 */
import { Platform } from "@refpersys/core"
import type { ChildProcess } from "node:child_process"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Children from "./internal/children.js"
import * as internal from "./internal/nodePlatform.js"

/**
 * Options of {@link make} and {@link layer}.
 *
 * @example
 * ```ts
 * import { NodePlatform } from "@refpersys/platform-linux"
 *
 * const layer = NodePlatform.layer({ maxFds: 32, bufferLimit: 4096 })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Most fds watched at once (`info.maxFds`); default 128, at least 1. */
  readonly maxFds?: number
  /**
   * Bytes a watch holds for {@link read} before it stops reading from its
   * fd; default 65,536, at least 1.
   */
  readonly bufferLimit?: number
  /**
   * The longest single sleep of the timer, in ms: an integer from 1 to
   * 2^31-1 (`Platform.maxTimerChunkMillis`, the default). A deadline further
   * away is slept towards in chunks, with a look at the program's `Clock`
   * after each, so it fires when due; a smaller chunk also notices sooner a
   * `Clock` that moved forward.
   */
  readonly timerChunkMillis?: number
}

/**
 * A node-portable platform: the `Platform` service plus {@link read}, which
 * hands out the bytes its watches have read.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodePlatform extends Platform.Platform {
  /**
   * Takes the bytes the watch of `fd` has read and not yet handed out (an
   * empty array when there are none), which lets the watch report `read`
   * again. Fails with `BadFd` when no watch of `fd` is open.
   */
  readonly read: (fd: number) => Effect.Effect<Uint8Array, Platform.PlatformError>
}

/**
 * Builds a node-portable platform for the scope. Closing the scope ends its
 * signal claims, watches and timers; afterwards `send`, `signals`, `watch`
 * and `timer` fail with `Closed`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { NodePlatform } from "@refpersys/platform-linux"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const platform = yield* NodePlatform.make()
 *   const signals = yield* platform.signals(["SIGUSR2"])
 *   process.kill(process.pid, "SIGUSR2")
 *   return yield* Stream.runCollect(Stream.take(signals, 1)) // ["SIGUSR2"]
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<NodePlatform, never, Scope.Scope> => internal.make(options)

/**
 * A layer providing the node-portable `Platform`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Agenda, EventLoop } from "@refpersys/core"
 * import { NodePlatform } from "@refpersys/platform-linux"
 *
 * const Runtime = EventLoop.layer().pipe(
 *   Layer.provideMerge(Layer.merge(NodePlatform.layer(), Agenda.layer({ workers: 4 })))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Platform.Platform> =>
  Layer.effect(Platform.Platform, make(options))

/**
 * The node-portable platform in context, to call {@link NodePlatform.read}
 * from places that cannot require `Platform`, such as event loop handlers.
 * Fails with `Unsupported` when the platform is another implementation, whose
 * watches leave the bytes in the fd.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EventLoop } from "@refpersys/core"
 * import { NodePlatform } from "@refpersys/platform-linux"
 *
 * declare const fd: number
 * const logPipe = Effect.gen(function*() {
 *   const loop = yield* EventLoop.EventLoop
 *   const node = yield* NodePlatform.fromPlatform
 *   yield* loop.watchFd(fd, { read: true }, {
 *     explanation: "log what the helper process writes",
 *     handle: () => Effect.flatMap(node.read(fd), (bytes) => Effect.log(Buffer.from(bytes).toString()))
 *   })
 * })
 * ```
 *
 * @since 0.1.0
 * @category watching
 */
export const fromPlatform: Effect.Effect<NodePlatform, Platform.PlatformError, Platform.Platform> = Effect.flatMap(
  Platform.Platform,
  (platform) => {
    const node = internal.fromPlatform(platform)
    return node === undefined
      ? Effect.fail(
        new Platform.PlatformError({
          operation: "read",
          reason: "Unsupported",
          detail: `the platform in context is "${platform.info.name}", not "node-portable": ` +
            `its watches leave the bytes in the fd, read them from the fd itself`
        })
      )
      : Effect.succeed(node)
  }
)

/**
 * Takes the bytes that the node-portable `Platform` in context has read from
 * the watched `fd`; see {@link NodePlatform.read} and {@link fromPlatform}
 * (which fails the same way on another platform).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NodePlatform } from "@refpersys/platform-linux"
 *
 * declare const fd: number
 * const text = Effect.map(NodePlatform.read(fd), (bytes) => Buffer.from(bytes).toString())
 * ```
 *
 * @since 0.1.0
 * @category watching
 */
export const read = (fd: number): Effect.Effect<Uint8Array, Platform.PlatformError, Platform.Platform> =>
  Effect.flatMap(fromPlatform, (node) => node.read(fd))

/**
 * Reports the exit of a child process on the `childExits` stream of every
 * open platform of this package (portable or native). Node reaps the children it spawns, so the
 * platform cannot see their exits unless told. A child that has already
 * exited is reported at once; one that never started (no pid) is not.
 *
 * @example
 * ```ts
 * import { spawn } from "node:child_process"
 * import { NodePlatform } from "@refpersys/platform-linux"
 *
 * NodePlatform.trackChild(spawn("sleep", ["1"]))
 * ```
 *
 * @since 0.1.0
 * @category child processes
 */
export const trackChild = (child: ChildProcess): void => Children.trackChild(child)
