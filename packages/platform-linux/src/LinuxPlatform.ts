/**
 * The native Linux `Platform`: real kernel objects from a small N-API addon.
 *
 * - signals: one process-wide `signalfd` for the claimed set, which a claim
 *   blocks in every thread of the process (a `tgkill` broadcast of a helper
 *   signal), plus a forwarding `sigaction` handler that writes to a pipe if
 *   the kernel still delivers a claimed signal to a thread that does not
 *   block it (the two are merged, so no delivery is fatal and none is lost;
 *   real-time signals queue in the kernel and each one is counted; see
 *   {@link signalStats});
 * - the timer: a monotonic `timerfd`, armed with the delay from the
 *   program's `Clock` to the deadline (at most `timerChunkMillis` at a time:
 *   each expiry looks at the `Clock` and arms the rest, so a far deadline is
 *   a chain and a past one fires at once);
 * - commands: a `pipe2` self-pipe, one-byte writes (atomic from any thread);
 * - readiness: one libuv `uv_poll_t` per fd on Node's own loop.
 *
 * Every poll handle is unreferenced unless `ref: true` is passed, so the
 * platform never keeps the process alive by itself.
 *
 * Two things stay with Node, because libuv relies on them: `SIGCHLD` is
 * heard through Node's own signal watcher (blocking it or replacing libuv's
 * handler would stop node:child_process from reaping), and child exits come
 * from {@link trackChild}. Signals are claimed on the main thread only: a
 * claim from a worker_thread fails with `Unsupported`.
 *
 * @since 0.1.0
 */
import { Platform } from "@refpersys/core"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { ChildProcess } from "node:child_process"
import * as Children from "./internal/children.js"
import * as internal from "./internal/linuxPlatform.js"
import * as Native from "./internal/native.js"

/**
 * Options of {@link make} and {@link layer}.
 *
 * @example
 * ```ts
 * import { LinuxPlatform } from "@refpersys/platform-linux"
 *
 * const layer = LinuxPlatform.layer({ maxFds: 64, ref: true })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Most fds watched at once (`info.maxFds`); default 128, at least 1. */
  readonly maxFds?: number
  /**
   * Whether the platform's poll handles keep Node's loop alive; default
   * `false`, so that an idle program can exit. A program whose only work
   * comes from the platform (signals, commands, fds) wants `true`.
   */
  readonly ref?: boolean
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
 * Whether the native addon loaded in this process.
 *
 * @example
 * ```ts
 * import { LinuxPlatform } from "@refpersys/platform-linux"
 *
 * console.log(LinuxPlatform.isAvailable ? "native" : LinuxPlatform.loadError)
 * ```
 *
 * @since 0.1.0
 * @category availability
 */
export const isAvailable: boolean = Native.addon !== undefined

/**
 * Why the native addon did not load (not Linux, not built, failed to load),
 * or `undefined` when it did.
 *
 * @example
 * ```ts
 * import { LinuxPlatform } from "@refpersys/platform-linux"
 *
 * if (LinuxPlatform.loadError !== undefined) console.warn(LinuxPlatform.loadError)
 * ```
 *
 * @since 0.1.0
 * @category availability
 */
export const loadError: string | undefined = Native.loadError

/**
 * The signal number of a claimable name on this system (`"SIGUSR1"`,
 * `"SIGRTMIN+3"`, `"SIGRTMAX-2"`...), or `undefined` when the name cannot be
 * claimed (see `Platform.isClaimableSignal`) or the native addon is missing.
 *
 * @example
 * ```ts
 * import { LinuxPlatform } from "@refpersys/platform-linux"
 *
 * LinuxPlatform.signalNumber("SIGRTMIN+1") // 35 with glibc
 * ```
 *
 * @since 0.1.0
 * @category signals
 */
export const signalNumber: (name: string) => number | undefined = internal.signalNumber

/**
 * How many claimed-signal deliveries this process has read, by path, since it
 * started (all claims of all native platforms together): `viaSignalfd` were
 * read from the signalfd (the claimed set is blocked in every thread, the
 * normal path); `viaForwarding` came through the forwarding handler (a thread
 * that did not block the signal yet, e.g. one created just before a claim).
 * Both are merged into the claims' streams; this is for diagnostics and tests.
 *
 * @example
 * ```ts
 * import { LinuxPlatform } from "@refpersys/platform-linux"
 *
 * const { viaSignalfd, viaForwarding } = LinuxPlatform.signalStats()
 * ```
 *
 * @since 0.1.0
 * @category signals
 */
export const signalStats: () => SignalStats = internal.signalStats

/**
 * Counts returned by {@link signalStats}.
 *
 * @since 0.1.0
 * @category signals
 */
export interface SignalStats {
  /** Deliveries read from the signalfd. */
  readonly viaSignalfd: number
  /** Deliveries forwarded by the `sigaction` handler through its pipe. */
  readonly viaForwarding: number
}

/**
 * Builds a native platform for the scope. Closing the scope closes the
 * platform: its fds are closed, its streams end, and `send`, `signals`,
 * `watch` and `timer` fail with `Closed`. Fails with `Unsupported` when the
 * addon is not loaded (the detail is {@link loadError}).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { LinuxPlatform } from "@refpersys/platform-linux"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const platform = yield* LinuxPlatform.make()
 *   yield* platform.commands.send(68)
 *   return yield* Stream.runHead(platform.commands.received) // Option.some(68)
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Platform.Platform, Platform.PlatformError, Scope.Scope> =>
  internal.make(options)

/**
 * The native platform as a `Platform` layer. Building it fails with
 * `Unsupported` when the addon is not loaded (see {@link isAvailable}).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Platform } from "@refpersys/core"
 * import { LinuxPlatform } from "@refpersys/platform-linux"
 *
 * const firstHup = Effect.scoped(Effect.gen(function*() {
 *   const platform = yield* Platform.Platform
 *   return yield* Stream.runHead(yield* platform.signals(["SIGHUP"]))
 * })).pipe(Effect.provide(LinuxPlatform.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Platform.Platform, Platform.PlatformError> =>
  Layer.effect(Platform.Platform, make(options))

/**
 * Reports the exit of a child process on the `childExits` stream of every
 * open platform of this package (native or portable). Node reaps the
 * children it spawns, so no platform can wait for them without taking them
 * from node:child_process; the child's own `exit` event is the source. A
 * child that has already exited is reported at once; one that never started
 * (no pid) is not.
 *
 * @example
 * ```ts
 * import { spawn } from "node:child_process"
 * import { LinuxPlatform } from "@refpersys/platform-linux"
 *
 * LinuxPlatform.trackChild(spawn("true"))
 * ```
 *
 * @since 0.1.0
 * @category child processes
 */
export const trackChild = (child: ChildProcess): void => Children.trackChild(child)
