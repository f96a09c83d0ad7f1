/**
 * A deterministic `Platform` for tests, driven by hand through the
 * {@link TestPlatform} control service and by `TestClock`.
 *
 * Nothing reaches the kernel: signals, fd readiness and child exits happen
 * when a test says so, and the timer sleeps on the program's `Clock`, so a
 * `TestClock` moves it. The platform keeps the contract's failure modes
 * (bad fds, fds watched twice, the fd limit, unclaimable signals, bad bytes)
 * so that code tested against it meets the same errors as on Linux.
 *
 * @since 0.1.0
 */
import { Platform } from "@refpersys/core"
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * Options of {@link make} and {@link layer}.
 *
 * @example
 * ```ts
 * import { TestPlatform } from "@refpersys/testkit"
 *
 * const options: TestPlatform.Options = { maxFds: 4, realtimeSignals: false }
 * const layer = TestPlatform.layer(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Most fds watched at once (`info.maxFds`); default 128, at least 1. */
  readonly maxFds?: number
  /** Whether `SIGRTMIN+n` / `SIGRTMAX-n` can be claimed (`info.realtimeSignals`); default `true`. */
  readonly realtimeSignals?: boolean
  /**
   * The longest single sleep of the timer, in ms (1 to 2^31-1, the default),
   * as for the real platforms: a far deadline is slept towards in chunks,
   * looking at the `Clock` after each. `TestClock` needs no chunk; a live
   * `Clock` that a test moves forward is noticed at the end of a chunk.
   */
  readonly timerChunkMillis?: number
}

/**
 * The control service: drives a test platform and shows what its users did
 * with it. Every view (`claimed`, `watched`, `armed`...) is read when the
 * effect runs.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestPlatform {
  /** The platform this service drives. */
  readonly platform: Platform.Platform
  /**
   * Delivers a signal to every claim that holds it and succeeds with `true`;
   * with no such claim the signal is counted in {@link TestPlatform.unclaimed}
   * and dropped (`false`), as a real unclaimed signal would go to its
   * default disposition instead of the program.
   */
  readonly signal: (name: string) => Effect.Effect<boolean>
  /** Signals dropped by {@link TestPlatform.signal} because nobody claimed them. */
  readonly unclaimed: Effect.Effect<number>
  /** The signals claimed now, by any scope. */
  readonly claimed: Effect.Effect<ReadonlySet<string>>
  /**
   * Reports readiness for a watched fd; missing flags are `false`. Flags
   * outside the watch's interest are dropped (`hup` and `error` always get
   * through, as with epoll), and a report left with no flag is not emitted.
   * A report with `hup` or `error` ends the watch and frees its slot at
   * once. Fails with `BadFd` if the fd is not watched.
   */
  readonly ready: (fd: number, readiness: Partial<Platform.Readiness>) => Effect.Effect<void, Platform.PlatformError>
  /** `ready(fd, { hup: true })`: the peer closed. */
  readonly hangup: (fd: number) => Effect.Effect<void, Platform.PlatformError>
  /** The fds watched now. */
  readonly watched: Effect.Effect<ReadonlySet<number>>
  /** A fresh fd number: never handed out before and not marked closed or a regular file. */
  readonly openFd: Effect.Effect<number>
  /**
   * Makes `watch` refuse the fd with `BadFd`, as for a closed fd. A watch
   * already on it gets an `error` report and ends, as when an fd is closed
   * under epoll.
   */
  readonly markClosed: (fd: number) => Effect.Effect<void>
  /** Makes `watch` refuse the fd with `BadFd`, as epoll refuses regular files. */
  readonly markRegularFile: (fd: number) => Effect.Effect<void>
  /** Adds a child exit to `childExits`; `signal` is the one that killed the child. */
  readonly childExit: (pid: number, code: number | null, signal?: string) => Effect.Effect<void>
  /** The deadline the timer is armed to, or `undefined` when it is not armed (or has fired). */
  readonly armed: Effect.Effect<number | undefined>
  /** Every deadline passed to `arm`, oldest first, across all timer acquisitions. */
  readonly arms: Effect.Effect<ReadonlyArray<number>>
  /** Command bytes accepted by `send` and `unsafeSend`. */
  readonly sent: Effect.Effect<number>
  /** Command bytes emitted by `commands.received`. */
  readonly received: Effect.Effect<number>
}

/**
 * The control service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestPlatform } from "@refpersys/testkit"
 *
 * const program = Effect.gen(function*() {
 *   const test = yield* TestPlatform.TestPlatform
 *   yield* test.signal("SIGTERM")
 *   return yield* test.unclaimed // 1: nothing claimed SIGTERM
 * }).pipe(Effect.provide(TestPlatform.layer()))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const TestPlatform: Context.Service<TestPlatform, TestPlatform> = Context.Service<TestPlatform>(
  "@refpersys/testkit/TestPlatform"
)

/**
 * A test platform and its control service, sharing one state.
 *
 * @since 0.1.0
 * @category models
 */
export interface Instance {
  readonly platform: Platform.Platform
  readonly control: TestPlatform
}

// The platform's queues end (rather than being shut down, which would
// interrupt their readers) so that the streams reading them end.
type EndingQueue<A> = Queue.Queue<A, Cause.Done>

// One element per pull: a consumer that stops after `Stream.take(n)` leaves
// the rest queued for the next consumer instead of losing a whole batch
// (`Stream.fromQueue` takes everything queued at each pull).
const oneByOne = <A>(queue: EndingQueue<A>): Stream.Stream<A> =>
  Stream.fromPull(Effect.succeed(Effect.map(Queue.take(queue), (a): readonly [A] => [a])))

// Drops what is still queued, as closing a real platform would, and ends the
// streams reading the queue.
const close = <A>(queue: EndingQueue<A>): Effect.Effect<void> =>
  Effect.andThen(Queue.clear(queue), Queue.end(queue))

interface Claim {
  readonly names: ReadonlySet<string>
  readonly queue: EndingQueue<string>
}

interface Watch {
  readonly fd: number
  readonly interest: Platform.Interest
  readonly queue: EndingQueue<Platform.Readiness>
}

// `make` hands the control service out through the layer, but code that
// only sees `Platform` (a conformance driver, say) needs a way back to it.
const controls = new WeakMap<Platform.Platform, TestPlatform>()

/**
 * Builds a test platform and its control service for the scope. Closing the
 * scope closes the platform: its streams end, and `send`, `signals`,
 * `watch` and `timer` fail with `Closed`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { TestPlatform } from "@refpersys/testkit"
 *
 * const bytes = Effect.scoped(Effect.gen(function*() {
 *   const { platform, control } = yield* TestPlatform.make()
 *   yield* platform.commands.send(68)
 *   const received = yield* Stream.runCollect(Stream.take(platform.commands.received, 1))
 *   return [received, yield* control.sent] // [[68], 1]
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Instance, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxFds = options.maxFds ?? 128
    const realtimeSignals = options.realtimeSignals ?? true
    if (!Number.isInteger(maxFds) || maxFds < 1) {
      return yield* Effect.die(new Error(`TestPlatform: maxFds must be an integer of at least 1, got ${String(maxFds)}`))
    }

    const commandQueue = yield* Queue.unbounded<number, Cause.Done>()
    const childQueue = yield* Queue.unbounded<Platform.ChildStatus, Cause.Done>()
    const claims = new Set<Claim>()
    const watches = new Map<number, Watch>()
    const closedFds = new Set<number>()
    const regularFiles = new Set<number>()
    const arms: Array<number> = []
    let closed = false
    let timerHeld = false
    let armed: number | undefined = undefined
    let unclaimed = 0
    let sent = 0
    let received = 0
    let nextFd = 3

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        const queues: Array<EndingQueue<any>> = [commandQueue, childQueue]
        for (const claim of claims) queues.push(claim.queue)
        for (const watch of watches.values()) queues.push(watch.queue)
        claims.clear()
        watches.clear()
        return Effect.forEach(queues, close, { discard: true })
      })
    )

    const fail = (error: Platform.PlatformError) => Effect.fail(error)

    const signals = (names: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        if (closed) return yield* fail(Platform.closed("test", "signals"))
        // Checked before anything is claimed, so a bad list claims nothing.
        const checked = Platform.validateSignals(names, { platform: "test", realtimeSignals })
        if (Result.isFailure(checked)) return yield* fail(checked.failure)
        const queue = yield* Queue.unbounded<string, Cause.Done>()
        const claim: Claim = { names: new Set(names), queue }
        yield* Effect.acquireRelease(
          Effect.sync(() => claims.add(claim)),
          () => Effect.andThen(Effect.sync(() => claims.delete(claim)), close(queue))
        )
        return oneByOne(queue)
      })

    const badFd = (fd: number, why: string, operation = "watch") =>
      fail(new Platform.PlatformError({ operation, reason: "BadFd", detail: `fd ${String(fd)} ${why}` }))

    // Removes the watch at once, so that the fd can be watched again and the
    // slot counts as free as soon as the report that ends the watch exists.
    const end = (watch: Watch) => {
      if (watches.get(watch.fd) === watch) watches.delete(watch.fd)
    }

    const watch = (fd: number, interest: Platform.Interest) =>
      Effect.gen(function*() {
        if (closed) return yield* fail(Platform.closed("test", "watch"))
        if (!Number.isInteger(fd) || fd < 0) return yield* badFd(fd, "is not an fd: fds are non-negative integers")
        if (closedFds.has(fd)) return yield* badFd(fd, "is closed")
        if (regularFiles.has(fd)) {
          return yield* badFd(fd, "is a regular file, which is always ready and cannot be watched; read it directly")
        }
        if (watches.has(fd)) {
          return yield* fail(
            new Platform.PlatformError({
              operation: "watch",
              reason: "AlreadyWatched",
              detail: `fd ${fd} is already watched; close the scope of the first watch before watching it again`
            })
          )
        }
        if (watches.size >= maxFds) {
          return yield* fail(
            new Platform.PlatformError({
              operation: "watch",
              reason: "TooManyFds",
              detail: `${watches.size} fds are watched and the limit is ${maxFds}; ` +
                `close some watches or raise maxFds in TestPlatform.layer options`
            })
          )
        }
        const queue = yield* Queue.unbounded<Platform.Readiness, Cause.Done>()
        const entry: Watch = { fd, interest: { ...interest }, queue }
        yield* Effect.acquireRelease(
          Effect.sync(() => watches.set(fd, entry)),
          () => Effect.andThen(Effect.sync(() => end(entry)), close(queue))
        )
        return Stream.takeUntil(oneByOne(queue), (r) => r.hup || r.error)
      })

    const timer = Effect.gen(function*() {
      if (closed) return yield* fail(Platform.closed("test", "timer"))
      if (timerHeld) {
        return yield* fail(
          new Platform.PlatformError({
            operation: "timer",
            reason: "Unsupported",
            detail: "the test platform has one timer and another scope holds it; close that scope first"
          })
        )
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          timerHeld = true
        }),
        () =>
          Effect.sync(() => {
            timerHeld = false
          })
      )
      return yield* Platform.clockTimer({
        name: "TestPlatform",
        ...(options.timerChunkMillis === undefined ? {} : { chunkMillis: options.timerChunkMillis }),
        onArm: (deadline) => {
          arms.push(deadline)
          armed = deadline
        },
        onClear: () => {
          armed = undefined
        }
      })
    })

    const send = (byte: number) =>
      Effect.suspend(() => {
        if (closed) return fail(Platform.closed("test", "command"))
        if (!Platform.isCommandByte(byte)) return fail(Platform.invalidByte(byte))
        sent++
        Queue.offerUnsafe(commandQueue, byte)
        return Effect.void
      })

    const unsafeSend = (byte: number): void => {
      if (closed) throw Platform.closed("test", "command")
      if (!Platform.isCommandByte(byte)) throw Platform.invalidByte(byte)
      sent++
      Queue.offerUnsafe(commandQueue, byte)
    }

    const platform: Platform.Platform = {
      info: { name: "test", maxFds, realtimeSignals },
      signals,
      timer,
      watch,
      commands: {
        send,
        unsafeSend,
        received: Stream.mapArray(oneByOne(commandQueue), (batch) => {
          received += batch.length
          return batch
        })
      },
      childExits: oneByOne(childQueue)
    }

    const ready = (fd: number, readiness: Partial<Platform.Readiness>) =>
      Effect.suspend(() => {
        const entry = watches.get(fd)
        if (entry === undefined) {
          return badFd(fd, "is not watched, so it cannot report readiness; watch it first", "ready")
        }
        const report: Platform.Readiness = {
          read: (readiness.read ?? false) && entry.interest.read === true,
          write: (readiness.write ?? false) && entry.interest.write === true,
          hup: readiness.hup ?? false,
          error: readiness.error ?? false
        }
        if (report.hup || report.error) end(entry)
        if (report.read || report.write || report.hup || report.error) Queue.offerUnsafe(entry.queue, report)
        return Effect.void
      })

    const control: TestPlatform = {
      platform,
      signal: (name) =>
        Effect.sync(() => {
          let delivered = false
          for (const claim of claims) {
            if (claim.names.has(name)) {
              Queue.offerUnsafe(claim.queue, name)
              delivered = true
            }
          }
          if (!delivered) unclaimed++
          return delivered
        }),
      unclaimed: Effect.sync(() => unclaimed),
      claimed: Effect.sync(() => {
        const names = new Set<string>()
        for (const claim of claims) for (const name of claim.names) names.add(name)
        return names
      }),
      ready,
      hangup: (fd) => ready(fd, { hup: true }),
      watched: Effect.sync(() => new Set(watches.keys())),
      openFd: Effect.sync(() => {
        while (closedFds.has(nextFd) || regularFiles.has(nextFd)) nextFd++
        return nextFd++
      }),
      markClosed: (fd) =>
        Effect.suspend(() => {
          closedFds.add(fd)
          return watches.has(fd) ? Effect.ignore(ready(fd, { error: true })) : Effect.void
        }),
      markRegularFile: (fd) =>
        Effect.sync(() => {
          regularFiles.add(fd)
        }),
      childExit: (pid, code, signal) =>
        Effect.sync(() => {
          Queue.offerUnsafe(childQueue, { pid, code, signal: signal ?? null })
        }),
      armed: Effect.sync(() => armed),
      arms: Effect.sync(() => arms.slice()),
      sent: Effect.sync(() => sent),
      received: Effect.sync(() => received)
    }
    controls.set(platform, control)
    return { platform, control }
  })


/**
 * A layer with a test platform as `Platform` and its control service as
 * {@link TestPlatform}, both from one instance.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Platform } from "@refpersys/core"
 * import { TestPlatform } from "@refpersys/testkit"
 *
 * const first = Effect.scoped(Effect.gen(function*() {
 *   const platform = yield* Platform.Platform
 *   const test = yield* TestPlatform.TestPlatform
 *   const signals = yield* platform.signals(["SIGHUP"])
 *   yield* test.signal("SIGHUP")
 *   return yield* Stream.runHead(signals) // Option.some("SIGHUP")
 * })).pipe(Effect.provide(TestPlatform.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Platform.Platform | TestPlatform> =>
  Layer.effectContext(
    Effect.map(make(options), ({ control, platform }) =>
      Context.make(Platform.Platform, platform).pipe(Context.add(TestPlatform, control)))
  )

/**
 * The control service of the current platform, for code that is handed only
 * `Platform` (a conformance driver, say). Dies if the platform is not a test
 * platform.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestPlatform } from "@refpersys/testkit"
 *
 * const raise = (name: string) =>
 *   Effect.flatMap(TestPlatform.fromPlatform, (test) => test.signal(name))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const fromPlatform: Effect.Effect<TestPlatform, never, Platform.Platform> = Effect.flatMap(
  Platform.Platform,
  (platform) => {
    const control = controls.get(platform)
    return control === undefined
      ? Effect.die(new Error(`TestPlatform.fromPlatform: the platform "${platform.info.name}" is not a test platform`))
      : Effect.succeed(control)
  }
)
