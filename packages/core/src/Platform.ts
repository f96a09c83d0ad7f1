/**
 * The platform: the swappable layer that gives the event loop its kernel
 * objects (signals, one timer, fd readiness, a command channel, child exits).
 *
 * Implementations: `TestPlatform` (in `@refpersys/testkit`, driven by hand and
 * by `TestClock`), and the Linux native and portable Node layers (in
 * `@refpersys/platform-linux`). All of them must pass the conformance suite
 * of the test kit.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as internalClockTimer from "./internal/clockTimer.js"
import type * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"

/**
 * Why a platform operation failed.
 *
 * - `BadFd`: not an open fd of a kind that can be watched (negative, closed,
 *   a regular file).
 * - `AlreadyWatched`: the fd is already watched; unwatch it first.
 * - `TooManyFds`: the platform's fd limit (128 by default) is reached.
 * - `InvalidSignal`: not a signal name the platform knows, or one it cannot claim.
 * - `InvalidByte`: a command byte outside 0..255.
 * - `InvalidDeadline`: a timer deadline that is not a finite number.
 * - `Unsupported`: the platform does not offer this operation.
 * - `Closed`: the platform's scope is closed.
 * - `System`: the operating system refused (see `errno`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorReason = Schema.Literals([
  "BadFd",
  "AlreadyWatched",
  "TooManyFds",
  "InvalidSignal",
  "InvalidByte",
  "InvalidDeadline",
  "Unsupported",
  "Closed",
  "System"
])

/**
 * A failed platform operation.
 *
 * @since 0.1.0
 * @category errors
 */
export class PlatformError extends Schema.TaggedError<PlatformError>()("PlatformError", {
  /** The operation, e.g. `"watch"`, `"signals"`, `"timer"`, `"command"`. */
  operation: Schema.String,
  reason: ErrorReason,
  /** What happened and what to do about it. */
  detail: Schema.String,
  /** The OS error code name, e.g. `"EBADF"`, when the OS refused. */
  errno: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `${this.operation} failed (${this.reason}${this.errno === undefined ? "" : `, ${this.errno}`}): ${this.detail}`
  }
}

/**
 * Which readiness a watch is interested in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Interest {
  readonly read?: boolean
  readonly write?: boolean
}

/**
 * One readiness report for a watched fd. After a report with `hup` or
 * `error`, the watch stream ends: a closed peer never spins the loop.
 *
 * @since 0.1.0
 * @category models
 */
export interface Readiness {
  readonly read: boolean
  readonly write: boolean
  readonly hup: boolean
  readonly error: boolean
}

/**
 * A child process ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChildStatus {
  readonly pid: number
  readonly code: number | null
  readonly signal: string | null
}

/**
 * The platform's one timer, armed to an absolute deadline in milliseconds on
 * the `Clock` of the program (`Clock.currentTimeMillis`, read through the
 * `Clock` of the fiber that acquired the timer). Arming again replaces the
 * previous deadline. `fired` emits the deadline each time the timer goes off
 * (never before its deadline).
 *
 * Every finite deadline fires: one already past (however far: `-1e300`, a
 * date in 1700) fires at once, and one further away than a single sleep of
 * the host allows (2^31-1 ms, about 24.8 days, for setTimeout and the native
 * timer alike) is reached by a chain of shorter sleeps, each of which looks
 * at the `Clock` again. `arm` fails with `InvalidDeadline` for NaN and
 * ±Infinity (use `disarm` to stop the timer), so no arming is silently
 * one that never fires.
 *
 * @since 0.1.0
 * @category models
 */
export interface Timer {
  readonly arm: (deadline: number) => Effect.Effect<void, PlatformError>
  readonly disarm: Effect.Effect<void>
  readonly fired: Stream.Stream<number>
}

/**
 * The command channel (the original's self-pipe). `unsafeSend` may be called
 * from anywhere, including callbacks outside Effect; bytes from one sender
 * arrive in the order sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface Commands {
  readonly send: (byte: number) => Effect.Effect<void, PlatformError>
  /** Sends without Effect; throws `PlatformError` on a bad byte or a closed channel. */
  readonly unsafeSend: (byte: number) => void
  /** The received bytes. Consume it once (the event loop does). */
  readonly received: Stream.Stream<number, PlatformError>
  /**
   * The write end of the channel when it is a real pipe: other threads of the
   * process (worker_threads) may write single bytes to it (one-byte writes
   * are atomic). Valid while the platform's scope is open; `undefined` for
   * in-process channels.
   */
  readonly writeFd?: number | undefined
}

/**
 * What a platform implementation is and can do.
 *
 * @since 0.1.0
 * @category models
 */
export interface Info {
  /** `"test"`, `"node-portable"`, `"linux-native"`... */
  readonly name: string
  /** Most fds watched at once. */
  readonly maxFds: number
  /** Whether real-time signals (`SIGRTMIN+n`) can be claimed. */
  readonly realtimeSignals: boolean
}

/**
 * The platform service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Platform {
  readonly info: Info
  /**
   * Claims the signals for the scope and returns the stream of delivered
   * signal names; closing the scope restores the previous dispositions.
   * Fails at once with `InvalidSignal` for names it cannot claim. When
   * several scopes claim one signal, each of their streams gets every
   * delivery.
   */
  readonly signals: (
    signals: ReadonlyArray<string>
  ) => Effect.Effect<Stream.Stream<string, PlatformError>, PlatformError, Scope.Scope>
  /** Acquires the timer for the scope. */
  readonly timer: Effect.Effect<Timer, PlatformError, Scope.Scope>
  /**
   * Watches an fd for the scope and returns its readiness reports. Fails at
   * once with `BadFd`, `AlreadyWatched` or `TooManyFds`; the stream ends
   * after a `hup` or `error` report (and frees the slot).
   */
  readonly watch: (
    fd: number,
    interest: Interest
  ) => Effect.Effect<Stream.Stream<Readiness, PlatformError>, PlatformError, Scope.Scope>
  readonly commands: Commands
  /** Child processes that ended. */
  readonly childExits: Stream.Stream<ChildStatus, PlatformError>
}

/**
 * The platform service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Platform: Context.Service<Platform, Platform> = Context.Service<Platform>("@refpersys/core/Platform")

/**
 * Every standard Linux signal name (real-time ones are `SIGRTMIN+n`), claimable
 * or not, so that platforms can tell "cannot be claimed" from "unknown".
 *
 * @since 0.1.0
 * @category signals
 */
export const signalNames: ReadonlyArray<string> = [
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGIOT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPOLL",
  "SIGPWR",
  "SIGSYS"
]

// Uncatchable (KILL, STOP), faults that must stay fatal, SIGSTKFLT (the native
// layer's helper signal) and the aliases SIGIOT (of SIGABRT) and SIGPOLL (of SIGIO).
const notClaimable = new Set([
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGIOT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGSEGV",
  "SIGSTKFLT",
  "SIGSTOP",
  "SIGPOLL"
])

const standardSignals = new Set(signalNames.filter((name) => !notClaimable.has(name)))

/**
 * Whether a name is a signal the runtime can claim: a catchable standard
 * signal (`SIGKILL` and `SIGSTOP` cannot be caught; `SIGSEGV` and friends
 * must not be) or a real-time signal `SIGRTMIN+n` / `SIGRTMAX-n` with n from
 * 0 to 30 (glibc keeps 30 real-time signals for programs).
 *
 * @example
 * ```ts
 * import { Platform } from "@refpersys/core"
 *
 * Platform.isClaimableSignal("SIGUSR1")    // true
 * Platform.isClaimableSignal("SIGRTMIN+3") // true
 * Platform.isClaimableSignal("SIGKILL")    // false
 * ```
 *
 * @since 0.1.0
 * @category signals
 */
export const isClaimableSignal = (name: string): boolean =>
  standardSignals.has(name) || /^(SIGRTMIN(\+([0-9]|[12][0-9]|30))?|SIGRTMAX(-([0-9]|[12][0-9]|30))?)$/.test(name)

/**
 * The longest single sleep a platform timer takes, in milliseconds: 2^31-1
 * (about 24.8 days). `setTimeout`, and so Effect's live `Clock`, treats a
 * longer delay as infinite; a timer whose deadline is further away sleeps
 * this long (or its `chunkMillis`) and looks at the `Clock` again.
 *
 * @since 0.1.0
 * @category timers
 */
export const maxTimerChunkMillis: number = 2 ** 31 - 1

/**
 * Whether a value is a timer deadline: a finite number of `Clock`
 * milliseconds (past ones included: they fire at once).
 *
 * @since 0.1.0
 * @category timers
 */
export const isDeadline = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)

/**
 * The error every platform's `Timer.arm` gives for a deadline that is not a
 * finite number.
 *
 * @example
 * ```ts
 * import { Platform } from "@refpersys/core"
 *
 * Platform.invalidDeadline("test", NaN).reason // "InvalidDeadline"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const invalidDeadline = (platform: string, deadline: unknown): PlatformError =>
  new PlatformError({
    operation: "timer",
    reason: "InvalidDeadline",
    detail: `timer.arm of ${platform} needs a finite deadline in Clock milliseconds, got ` +
      `${String(deadline)}; a past deadline fires at once, and to stop the timer use timer.disarm instead of ` +
      "arming it to Infinity"
  })

/**
 * The timer chunk option of the platforms (`timerChunkMillis`): the longest
 * single sleep of their timer, an integer from 1 to {@link maxTimerChunkMillis}.
 * A smaller chunk makes the timer notice sooner that a `Clock` moved forward.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TimerChunkMillis = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: maxTimerChunkMillis }))

/**
 * Whether a value is a valid {@link TimerChunkMillis}.
 *
 * @since 0.1.0
 * @category timers
 */
export const isTimerChunk: (u: unknown) => u is number = Schema.is(TimerChunkMillis)

/**
 * What a platform can claim, for {@link validateSignals}.
 *
 * @since 0.1.0
 * @category signals
 */
export interface SignalSupport {
  /** The platform's name (`info.name`), for messages. */
  readonly platform: string
  /** Whether `SIGRTMIN+n` / `SIGRTMAX-n` can be claimed (`info.realtimeSignals`). */
  readonly realtimeSignals: boolean
  /** Why a claimable name cannot be claimed on this host (e.g. it has no signal number), or `undefined`. */
  readonly unavailable?: (name: string) => string | undefined
}

const describeValue = (u: unknown): string =>
  typeof u === "string" ? JSON.stringify(u) : u === null || u === undefined ? String(u) : `${String(u)} (a ${typeof u})`

const realtimeName = /^SIGRT(MIN|MAX)/

const whyNotClaimable = (name: string, support: SignalSupport): string | undefined => {
  if (isClaimableSignal(name)) {
    if (realtimeName.test(name) && !support.realtimeSignals) {
      return `${name} is a real-time signal and the ${support.platform} platform has none; use the linux-native ` +
        "platform (LinuxPlatform) for SIGRTMIN+n / SIGRTMAX-n"
    }
    return support.unavailable?.(name)
  }
  if (realtimeName.test(name)) {
    return `${name} is not a real-time signal name: SIGRTMIN+n and SIGRTMAX-n take n from 0 to 30`
  }
  if (signalNames.includes(name)) {
    return `${name} cannot be claimed: SIGKILL and SIGSTOP cannot be caught, and fault signals ` +
      "(SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGIOT) must not be; SIGSTKFLT is the native " +
      "platform's own, and SIGPOLL is SIGIO"
  }
  return `${JSON.stringify(name)} is not a signal name`
}

const claimableOn = (support: SignalSupport): string => {
  const standard = signalNames.filter((name) => isClaimableSignal(name) && support.unavailable?.(name) === undefined)
  return support.realtimeSignals
    ? `${standard.join(", ")}, and SIGRTMIN+n / SIGRTMAX-n with n from 0 to 30`
    : standard.join(", ")
}

const signalError = (why: string, support: SignalSupport): PlatformError =>
  new PlatformError({
    operation: "signals",
    reason: "InvalidSignal",
    detail: `${why}; claimable on the ${support.platform} platform: ${claimableOn(support)}`
  })

/**
 * Checks the list given to `Platform.signals`, the one check of every
 * platform: the same input gets the same `InvalidSignal` error everywhere.
 * Succeeds with the names when every entry is a signal the platform can
 * claim; fails on the first that is not (not a string, not a signal name,
 * not claimable, real-time where the platform has none, unavailable on the
 * host), naming it and what can be claimed instead. A platform calls it
 * before claiming anything, so a bad list claims nothing.
 *
 * @example
 * ```ts
 * import { Result } from "effect"
 * import { Platform } from "@refpersys/core"
 *
 * const support = { platform: "test", realtimeSignals: false }
 * Platform.validateSignals(["SIGTERM"], support)  // Result.succeed(["SIGTERM"])
 * Result.isFailure(Platform.validateSignals([0], support)) // true: InvalidSignal
 * ```
 *
 * @since 0.1.0
 * @category signals
 */
export const validateSignals = (
  names: unknown,
  support: SignalSupport
): Result.Result<ReadonlyArray<string>, PlatformError> => {
  if (!Array.isArray(names)) {
    return Result.fail(signalError(
      `signals takes an array of signal names such as ["SIGTERM"], got ${describeValue(names)}`,
      support
    ))
  }
  for (let i = 0; i < names.length; i++) {
    const name: unknown = names[i]
    if (typeof name !== "string") {
      return Result.fail(signalError(
        `signal list entry ${i} is ${describeValue(name)}, not a signal name: name signals by strings such as ` +
          `"SIGTERM" or "SIGRTMIN+1"`,
        support
      ))
    }
    const why = whyNotClaimable(name, support)
    if (why !== undefined) return Result.fail(signalError(why, support))
  }
  return Result.succeed(names as ReadonlyArray<string>)
}

/**
 * A {@link Timer} driven by the program's `Clock` (the clock of the fiber
 * that acquires it), for platforms without a kernel timer: it never fires
 * before its deadline, and `TestClock` moves it in tests. A far deadline is
 * slept towards in chunks of at most `chunkMillis` (default and upper bound
 * {@link maxTimerChunkMillis}), looking at the `Clock` after each, so it
 * fires when due even where the live `Clock` could not sleep that long, and
 * soon after a `Clock` that moves forward. `name` names the platform in its
 * errors (`arm` fails with `InvalidDeadline` for NaN or ±Infinity) and
 * defect messages (an `arm` after the scope closed); `onArm` and `onClear`
 * let a platform observe it.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Platform } from "@refpersys/core"
 *
 * const once = Effect.scoped(Effect.gen(function*() {
 *   const timer = yield* Platform.clockTimer({ name: "example" })
 *   yield* timer.arm(Date.now() + 10)
 *   return yield* Stream.runHead(timer.fired)
 * }))
 * ```
 *
 * @since 0.1.0
 * @category timers
 */
export const clockTimer: (hooks: {
  readonly name: string
  readonly chunkMillis?: number
  readonly onArm?: (deadline: number) => void
  readonly onClear?: () => void
}) => Effect.Effect<Timer, never, Scope.Scope> = internalClockTimer.make

/**
 * Whether a value is a command byte: an integer from 0 to 255.
 *
 * @since 0.1.0
 * @category commands
 */
export const isCommandByte = (u: unknown): u is number =>
  typeof u === "number" && Number.isInteger(u) && u >= 0 && u <= 255

/**
 * The error every platform gives for a command that is not a byte.
 *
 * @since 0.1.0
 * @category errors
 */
export const invalidByte = (byte: unknown): PlatformError =>
  new PlatformError({
    operation: "command",
    reason: "InvalidByte",
    detail: `command bytes are integers from 0 to 255, got ${String(byte)}`
  })

/**
 * The error every platform gives once its scope is closed.
 *
 * @example
 * ```ts
 * import { Platform } from "@refpersys/core"
 *
 * Platform.closed("node-portable", "watch").message
 * // "watch failed (Closed): the node-portable platform's scope is closed; ..."
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const closed = (platform: string, operation: string): PlatformError =>
  new PlatformError({
    operation,
    reason: "Closed",
    detail: `the ${platform} platform's scope is closed; use the platform only inside the scope (or layer) that built it`
  })
