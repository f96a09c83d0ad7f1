/**
 * The native platform over the addon (see ../LinuxPlatform.ts for what it
 * offers and native.ts for the addon itself).
 *
 * @internal
 */
import { Platform } from "@refpersys/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as os from "node:os"
import { isMainThread } from "node:worker_threads"
import type { Options } from "../LinuxPlatform.js"
import * as Children from "./children.js"
import * as Native from "./native.js"
import * as Queues from "./queues.js"

// ------------------------------------------------------------------ errors

const platformError = (operation: string, reason: Platform.PlatformError["reason"], detail: string, errno?: string) =>
  new Platform.PlatformError(errno === undefined ? { operation, reason, detail } : { operation, reason, detail, errno })

const kindNames: Record<string, string> = {
  fifo: "a pipe or FIFO",
  socket: "a socket",
  character: "a character device",
  block: "a block device",
  other: "an fd of another kind"
}

/**
 * Classifies what the kernel (or libuv) said when an fd was refused; `kind`
 * is what fstat said it is, when known.
 */
const watchError = (fd: number, error: unknown, kind?: string): Platform.PlatformError => {
  const errno = Native.errnoOf(error)
  const message = error instanceof Error ? error.message : String(error)
  switch (errno) {
    case "EBADF":
      return platformError("watch", "BadFd", `fd ${fd} is not open`, errno)
    case "EPERM":
      // epoll refuses files whose driver has no poll support; regular files
      // and directories never get here (refused before, from fstat).
      return platformError(
        "watch",
        "BadFd",
        kind === "character"
          ? `fd ${fd} is a character device without poll support (such as /dev/null, which is always ready: reads ` +
            "give end of file at once and writes always succeed), so the kernel refuses to poll it; read or write " +
            "it directly, or give the program a pipe, a socket or a terminal there instead"
          : `fd ${fd} (${kindNames[kind ?? "other"] ?? "an fd"}) does not support polling, so the kernel refuses it; ` +
            "read or write it directly, or give the program a pipe or a socket instead",
        errno
      )
    case "EEXIST":
      return platformError(
        "watch",
        "AlreadyWatched",
        `fd ${fd} is already polled on Node's loop (by Node itself, e.g. a net.Socket, or another platform); ` +
          "read it through that user, or close that user of the fd before watching it",
        errno
      )
    default:
      return platformError("watch", "System", `watching fd ${fd}: ${message}`, errno)
  }
}

/** Whether `fd` is not an open fd any more (fstat says EBADF). */
const isClosed = (addon: Native.Addon, fd: number): boolean => {
  try {
    addon.fdKind(fd)
    return false
  } catch (error) {
    return Native.errnoOf(error) === "EBADF"
  }
}

const systemError = (operation: string, error: unknown): Platform.PlatformError =>
  platformError(operation, "System", error instanceof Error ? error.message : String(error), Native.errnoOf(error))

// ----------------------------------------------------------------- signals

export const signalNumber = (name: string): number | undefined => {
  const addon = Native.addon
  if (addon === undefined || !Platform.isClaimableSignal(name)) return undefined
  const rt = /^SIGRT(MIN|MAX)(?:([+-])([0-9]+))?$/.exec(name)
  if (rt !== null) {
    const base = rt[1] === "MIN" ? addon.constants.SIGRTMIN : addon.constants.SIGRTMAX
    const n = base + (rt[2] === undefined ? 0 : (rt[2] === "+" ? 1 : -1) * Number(rt[3]))
    return n >= addon.constants.SIGRTMIN && n <= addon.constants.SIGRTMAX ? n : undefined
  }
  return (os.constants.signals as Record<string, number | undefined>)[name]
}

const signalSupport: Platform.SignalSupport = {
  platform: "linux-native",
  realtimeSignals: true,
  unavailable: (name) =>
    name === "SIGCHLD" || signalNumber(name) !== undefined ? undefined : `${name} has no signal number on this system`
}

const workerThreadError = platformError(
  "signals",
  "Unsupported",
  "the linux-native platform claims signals on the main thread only (dispositions and the signalfd are " +
    "process-wide, and a worker that ended would leave them blocked with nobody reading); claim them on the " +
    "main thread and pass them on, for example as command bytes through the platform's self-pipe"
)

/**
 * SIGCHLD stays with libuv, whose handler reaps Node's children: blocking it
 * or replacing the handler would stop node:child_process from seeing exits.
 * A claim listens through Node's own signal watcher instead, which runs
 * beside libuv's reaping.
 */
const claimSigchld = (queue: Queues.Source<string | Platform.PlatformError>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const listener = () => Queues.offer(queue, "SIGCHLD")
      process.on("SIGCHLD", listener)
      return listener
    }),
    (listener) => Effect.sync(() => process.removeListener("SIGCHLD", listener))
  )

interface Listener {
  /** Signal number to the name this claim used for it. */
  readonly names: ReadonlyMap<number, string>
  /** Names, or the error that ends the stream (the hub serves many claims and fails each one this way). */
  readonly queue: Queues.Source<string | Platform.PlatformError>
}

/**
 * Signal dispositions are process-wide, so the claims of every platform in
 * the process meet here: a signal stays claimed in the kernel while any
 * claim holds it, and each delivery goes to every claim that holds it.
 */
const signalHub = (() => {
  const counts = new Map<number, number>()
  const listeners = new Set<Listener>()
  let sources:
    | { readonly signalFd: number; readonly strayFd: number; readonly polls: ReadonlyArray<Native.PollHandle> }
    | undefined = undefined
  let refs = 0
  // Where deliveries came from: the signalfd (the claimed set is blocked in
  // every thread) or the forwarding handler (a thread that did not block it).
  const stats = { viaSignalfd: 0, viaForwarding: 0 }

  const dispatch = (signo: number) => {
    for (const listener of listeners) {
      const name = listener.names.get(signo)
      if (name !== undefined) Queues.offer(listener.queue, name)
    }
  }

  // Reads both sources dry; called by the polls and before a claim ends, so
  // that what was delivered while claimed reaches that claim.
  const drain = (addon: Native.Addon) => {
    if (sources === undefined) return
    for (const signo of addon.signalRead(sources.signalFd)) {
      stats.viaSignalfd++
      dispatch(signo)
    }
    for (;;) {
      const bytes = addon.readBytes(sources.strayFd, 4096)
      if (bytes === null || bytes.length === 0) break
      stats.viaForwarding += bytes.length
      for (const signo of bytes) dispatch(signo)
    }
  }

  const start = (addon: Native.Addon, ref: boolean) => {
    if (sources === undefined) {
      const { signalFd, strayFd } = addon.signalInit()
      const callback = () => {
        try {
          drain(addon)
        } catch (error) {
          const failure = systemError("signals", error)
          for (const listener of listeners) Queues.offer(listener.queue, failure)
        }
      }
      sources = { signalFd, strayFd, polls: [addon.pollOpen(signalFd, callback), addon.pollOpen(strayFd, callback)] }
    }
    for (const poll of sources.polls) {
      addon.pollStart(poll, true, false)
      if (ref) addon.pollRef(poll, true)
    }
    if (ref) refs++
  }

  const claim = (addon: Native.Addon, listener: Listener, ref: boolean) => {
    start(addon, ref)
    const done = new Map<number, string>()
    try {
      for (const [signo, name] of listener.names) {
        const count = counts.get(signo) ?? 0
        if (count === 0) addon.signalClaim(signo)
        counts.set(signo, count + 1)
        done.set(signo, name)
      }
      listeners.add(listener)
    } catch (error) {
      // Undoes exactly what this claim did, so a failed claim leaves nothing behind.
      release(addon, { names: done, queue: listener.queue }, ref)
      throw error
    }
  }

  const release = (addon: Native.Addon, listener: Listener, ref: boolean) => {
    try {
      drain(addon)
    } finally {
      listeners.delete(listener)
      let released = false
      for (const signo of listener.names.keys()) {
        const count = counts.get(signo) ?? 0
        if (count <= 1) {
          counts.delete(signo)
          if (count === 1) {
            addon.signalRelease(signo)
            released = true
          }
        } else counts.set(signo, count - 1)
      }
      // A delivery forwarded while the release unblocked the other threads
      // sits in the stray pipe: read it now, while no claim holds its signal,
      // so that it never reaches a later claim.
      if (released) drain(addon)
      if (sources !== undefined) {
        if (ref && --refs === 0) for (const poll of sources.polls) addon.pollRef(poll, false)
        // Nobody listens: stop polling, keep the fds for the next claim.
        if (listeners.size === 0) for (const poll of sources.polls) addon.pollStop(poll)
      }
    }
  }

  return { claim, release, stats: (): SignalStats => ({ ...stats }) }
})()

/** Counts of the signals the process read, by the path they took. */
export interface SignalStats {
  readonly viaSignalfd: number
  readonly viaForwarding: number
}

export const signalStats = (): SignalStats => signalHub.stats()

// ---------------------------------------------------------------- platform

export const make = (options: Options = {}): Effect.Effect<Platform.Platform, Platform.PlatformError, Scope.Scope> =>
  Effect.gen(function*() {
    const addon = Native.addon
    if (addon === undefined) {
      return yield* Effect.fail(
        platformError("platform", "Unsupported", `the linux-native platform is not available: ${Native.loadError ?? "unknown"}`)
      )
    }
    const maxFds = options.maxFds ?? 128
    const ref = options.ref ?? false
    const chunk = options.timerChunkMillis ?? Platform.maxTimerChunkMillis
    if (!Platform.isTimerChunk(chunk)) {
      return yield* Effect.die(
        new Error(
          `LinuxPlatform: timerChunkMillis must be an integer from 1 to ${Platform.maxTimerChunkMillis}, got ${String(chunk)}`
        )
      )
    }
    if (!Number.isInteger(maxFds) || maxFds < 1) {
      return yield* Effect.die(new Error(`LinuxPlatform: maxFds must be an integer of at least 1, got ${String(maxFds)}`))
    }
    let closed = false

    // ---- child exits: reported by trackChild (see children.ts)
    const childExits = yield* Children.exits

    // ---- commands: the self-pipe, read dry into a queue whenever readable.
    const commandQueue = yield* Queues.make<number>()
    const commandPipe = yield* Effect.try({
      try: () => addon.pipe(),
      catch: (error) => systemError("command", error)
    })
    let commandPoll: Native.PollHandle | undefined = undefined
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        if (commandPoll !== undefined) addon.pollClose(commandPoll)
        addon.close(commandPipe.readFd)
        addon.close(commandPipe.writeFd)
        Queues.closeUnsafe(commandQueue)
      })
    )
    commandPoll = yield* Effect.try({
      try: () => {
        const poll = addon.pollOpen(commandPipe.readFd, () => {
          for (;;) {
            const bytes = addon.readBytes(commandPipe.readFd, 4096)
            if (bytes === null || bytes.length === 0) return
            for (const byte of bytes) Queues.offer(commandQueue, byte)
          }
        })
        addon.pollStart(poll, true, false)
        if (ref) addon.pollRef(poll, true)
        return poll
      },
      catch: (error) => systemError("command", error)
    })

    const write = (byte: number): Platform.PlatformError | undefined => {
      if (closed) return Platform.closed("linux-native", "command")
      if (!Platform.isCommandByte(byte)) return Platform.invalidByte(byte)
      try {
        addon.sendByte(commandPipe.writeFd, byte)
        return undefined
      } catch (error) {
        return Native.errnoOf(error) === "EAGAIN"
          ? platformError("command", "System", "the command pipe is full: nobody consumes commands.received", "EAGAIN")
          : systemError("command", error)
      }
    }

    // ---- signals
    const signals = (names: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        if (closed) return yield* Effect.fail(Platform.closed("linux-native", "signals"))
        // Checked before anything is claimed, so a bad list claims nothing.
        const checked = Platform.validateSignals(names, signalSupport)
        if (Result.isFailure(checked)) return yield* Effect.fail(checked.failure)
        if (!isMainThread && checked.success.length > 0) return yield* Effect.fail(workerThreadError)
        const numbers = new Map<number, string>()
        let sigchld = false
        for (const name of checked.success) {
          if (name === "SIGCHLD") {
            sigchld = true
            continue
          }
          // Defined: validateSignals refused the names without a number.
          const signo = signalNumber(name)!
          if (!numbers.has(signo)) numbers.set(signo, name)
        }
        const queue = yield* Queues.make<string | Platform.PlatformError>()
        const listener: Listener = { names: numbers, queue }
        yield* Effect.acquireRelease(
          Effect.try({
            try: () => signalHub.claim(addon, listener, ref),
            catch: (error) => systemError("signals", error)
          }),
          () =>
            Effect.sync(() => signalHub.release(addon, listener, ref)).pipe(
              Effect.orDie,
              Effect.ensuring(Queues.close(queue))
            )
        )
        if (sigchld) yield* claimSigchld(queue)
        return Stream.mapEffect(
          Queues.stream(queue),
          (item) => typeof item === "string" ? Effect.succeed(item) : Effect.fail(item)
        )
      })

    // ---- the timer
    let timerHeld = false
    const timer = Effect.gen(function*() {
      if (closed) return yield* Effect.fail(Platform.closed("linux-native", "timer"))
      if (timerHeld) {
        return yield* Effect.fail(
          platformError("timer", "Unsupported", "the platform has one timer and another scope holds it; close that scope first")
        )
      }
      const fired = yield* Queues.make<number>()
      // CLOCK_MONOTONIC, like setTimeout: deadlines are on the program's
      // Clock (Date.now() when live) and are converted to the monotonic clock
      // when armed, so a wall-clock step does not move a timer already armed.
      const fd = yield* Effect.acquireRelease(
        Effect.try({ try: () => addon.timerCreate(false), catch: (error) => systemError("timer", error) }),
        (fd) =>
          Effect.sync(() => {
            timerHeld = false
            addon.close(fd)
            Queues.closeUnsafe(fired)
          })
      )
      timerHeld = true
      // The Clock of whoever acquires the timer, as for Platform.clockTimer:
      // deadlines are on the program's Clock. Each arming is a delay from
      // that Clock's reading, taken by the monotonic timerfd (relative), so a
      // wall-clock step does not move a timer already armed.
      // Read in nanoseconds: the live Clock's milliseconds are Date.now()'s
      // whole ones, and a delay computed from them is up to 1 ms late (a 1 ms
      // periodic timer then skipped one tick in seven).
      const clock = yield* Clock.Clock
      const now = () => Number(clock.currentTimeNanosUnsafe()) / 1e6
      let deadline: number | undefined = undefined
      // A far deadline is a chain of armings of at most `chunk` ms each (the
      // addon clamps to that): every expiry looks at the Clock and arms the rest.
      const set = (at: number) => addon.timerSetDelay(fd, at - now(), chunk)
      yield* Effect.acquireRelease(
        Effect.try({
          try: () => {
            const poll = addon.pollOpen(fd, () => {
              if (addon.timerRead(fd) === 0 || deadline === undefined) return
              // Never before the deadline, whatever the clocks did in between:
              // an expiry before it (a chunk of a far deadline, a Clock set
              // back) arms the rest instead of firing.
              if (now() < deadline) return set(deadline)
              const at = deadline
              deadline = undefined
              Queues.offer(fired, at)
            })
            addon.pollStart(poll, true, false)
            if (ref) addon.pollRef(poll, true)
            return poll
          },
          catch: (error) => systemError("timer", error)
        }),
        (poll) => Effect.sync(() => addon.pollClose(poll))
      )
      const service: Platform.Timer = {
        arm: (at) =>
          Effect.suspend(() => {
            if (!Platform.isDeadline(at)) return Effect.fail(Platform.invalidDeadline("LinuxPlatform", at))
            return Effect.try({
              try: () => {
                deadline = at
                set(at)
              },
              catch: (error) => {
                deadline = undefined
                return systemError("timer", error)
              }
            })
          }),
        disarm: Effect.sync(() => {
          deadline = undefined
          addon.timerDisarm(fd)
        }),
        fired: Queues.stream(fired)
      }
      return service
    })

    // ---- readiness
    interface Watch {
      readonly fd: number
      readonly poll: Native.PollHandle
      ended: boolean
    }
    const watches = new Map<number, Watch>()
    // Frees the slot at once, so that the fd can be watched again as soon as
    // the report that ends the watch exists.
    const end = (watch: Watch) => {
      if (watch.ended) return
      watch.ended = true
      if (watches.get(watch.fd) === watch) watches.delete(watch.fd)
      addon.pollClose(watch.poll)
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const watch of [...watches.values()]) end(watch)
      })
    )

    const watch = (fd: number, interest: Platform.Interest) =>
      Effect.gen(function*() {
        if (closed) return yield* Effect.fail(Platform.closed("linux-native", "watch"))
        if (!Number.isInteger(fd) || fd < 0) {
          return yield* Effect.fail(
            platformError("watch", "BadFd", `fd ${String(fd)} is not an fd: fds are non-negative integers`)
          )
        }
        if (watches.has(fd)) {
          return yield* Effect.fail(
            platformError(
              "watch",
              "AlreadyWatched",
              `fd ${fd} is already watched; close the scope of the first watch before watching it again`
            )
          )
        }
        if (watches.size >= maxFds) {
          return yield* Effect.fail(
            platformError(
              "watch",
              "TooManyFds",
              `${watches.size} fds are watched and the limit is ${maxFds}; ` +
                "close some watches or raise maxFds in LinuxPlatform.layer options"
            )
          )
        }
        const kind = yield* Effect.try({ try: () => addon.fdKind(fd), catch: (error) => watchError(fd, error) })
        if (kind === "file" || kind === "directory") {
          return yield* Effect.fail(
            platformError(
              "watch",
              "BadFd",
              `fd ${fd} is a ${kind === "file" ? "regular file" : "directory"}, which is always ready and cannot ` +
                "be watched; read it directly"
            )
          )
        }
        const wantRead = interest.read === true
        const wantWrite = interest.write === true
        // The pulls waiting for a report, oldest first. Polling runs only
        // while a pull waits, so a level-triggered fd nobody reads never spins.
        type Waiter = (report: Platform.Readiness | undefined) => void
        const waiters: Array<Waiter> = []
        const poll = yield* Effect.try({
          try: () =>
            addon.pollOpen(fd, (flags) => {
              const report: Platform.Readiness = {
                read: wantRead && (flags & Native.READ) !== 0,
                write: wantWrite && (flags & Native.WRITE) !== 0,
                hup: (flags & Native.HUP) !== 0,
                error: (flags & Native.ERROR) !== 0
              }
              if (!report.read && !report.write && !report.hup && !report.error) return
              const first = waiters.shift()
              if (report.hup || report.error) {
                end(entry)
                // The report ends the stream: whoever else waits sees the end.
                for (const other of waiters.splice(0)) other(undefined)
              } else if (waiters.length === 0) addon.pollStop(poll)
              first?.(report)
            }),
          catch: (error) => watchError(fd, error, kind)
        })
        const entry: Watch = { fd, poll, ended: false }
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            watches.set(fd, entry)
            if (ref) addon.pollRef(poll, true)
          }),
          () =>
            Effect.sync(() => {
              end(entry)
              for (const other of waiters.splice(0)) other(undefined)
            })
        )
        // One report per pull; failing with `Cause.Done` ends the stream.
        const next: Effect.Effect<Platform.Readiness, Platform.PlatformError | Cause.Done> = Effect.suspend(() => {
          if (entry.ended) return Cause.done()
          // The addon polls its own duplicate, which outlives the caller's fd:
          // once the caller closed it (e.g. the handler of the last report),
          // the watch would go on reporting a file nobody holds. Report an
          // error instead, which ends the watch.
          if (isClosed(addon, fd)) {
            end(entry)
            for (const other of waiters.splice(0)) other(undefined)
            return Effect.succeed({ read: false, write: false, hup: false, error: true })
          }
          return Effect.callback<Platform.Readiness, Platform.PlatformError | Cause.Done>((resume) => {
            const waiter: Waiter = (report) => resume(report === undefined ? Cause.done() : Effect.succeed(report))
            waiters.push(waiter)
            try {
              addon.pollStart(poll, wantRead, wantWrite)
            } catch (error) {
              waiters.splice(waiters.indexOf(waiter), 1)
              resume(Effect.fail(watchError(fd, error)))
            }
            return Effect.sync(() => {
              const index = waiters.indexOf(waiter)
              if (index >= 0) waiters.splice(index, 1)
              if (waiters.length === 0 && !entry.ended) addon.pollStop(poll)
            })
          })
        })
        return Stream.fromEffectRepeat(next)
      })

    const platform: Platform.Platform = {
      info: { name: "linux-native", maxFds, realtimeSignals: true },
      signals,
      timer,
      watch,
      commands: {
        send: (byte) =>
          Effect.suspend(() => {
            const error = write(byte)
            return error === undefined ? Effect.void : Effect.fail(error)
          }),
        unsafeSend: (byte) => {
          const error = write(byte)
          if (error !== undefined) throw error
        },
        received: Queues.stream(commandQueue),
        writeFd: commandPipe.writeFd
      },
      childExits
    }
    return platform
  })
