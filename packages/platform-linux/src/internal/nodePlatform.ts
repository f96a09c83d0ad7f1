import { Platform } from "@refpersys/core"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as NodePlatform from "../NodePlatform.js"
import * as Children from "./children.js"
import * as Queues from "./queues.js"

const NAME = "node-portable"

const error = (
  operation: string,
  reason: Platform.PlatformError["reason"],
  detail: string,
  errno?: string
): Platform.PlatformError =>
  new Platform.PlatformError(errno === undefined ? { operation, reason, detail } : { operation, reason, detail, errno })




const errnoOf = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && typeof (cause as { code?: unknown }).code === "string"
    ? (cause as { code: string }).code
    : undefined

// ---- signals ----------------------------------------------------------------

const nodeSignals = os.constants.signals as Readonly<Record<string, number | undefined>>

// What the host lacks: Node names only the signals this system has.
const signalSupport: Platform.SignalSupport = {
  platform: NAME,
  realtimeSignals: false,
  unavailable: (name) =>
    nodeSignals[name] === undefined ? `${name} has no signal number on this system (${process.platform})` : undefined
}

// Removing the last listener of a signal makes libuv reset it to SIG_DFL, not
// to what it was before. For these signals Node's own disposition is not the
// default one (SIGPIPE and SIGXFSZ are ignored, SIGUSR1 starts the inspector),
// and SIG_DFL would kill the process on the next delivery. Once such a signal
// has been claimed, a no-op listener stays installed for the process's life,
// so it remains harmless after the claim ends.
const notDefaultInNode = new Set(["SIGPIPE", "SIGXFSZ", "SIGUSR1"])
const guarded = new Set<string>()
const guard = (): void => {}

const guardSignal = (name: string): void => {
  if (notDefaultInNode.has(name) && !guarded.has(name)) {
    guarded.add(name)
    process.on(name as NodeJS.Signals, guard)
  }
}

// ---- watches ----------------------------------------------------------------

interface Watch {
  readonly fd: number
  readonly interest: Platform.Interest
  readonly queue: Queues.Source<Platform.Readiness>
  /** Bytes read from the fd and not yet taken with `read`. */
  chunks: Array<Buffer>
  size: number
  /** A `read` report is out and nobody has taken the bytes since. */
  notified: boolean
  finished: boolean
  socket: net.Socket | undefined
}

const instances = new WeakMap<Platform.Platform, NodePlatform.NodePlatform>()

/** @internal */
export const fromPlatform = (platform: Platform.Platform): NodePlatform.NodePlatform | undefined =>
  instances.get(platform)

/** @internal */
export const make = (
  options: NodePlatform.Options = {}
): Effect.Effect<NodePlatform.NodePlatform, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxFds = options.maxFds ?? 128
    const bufferLimit = options.bufferLimit ?? 65_536
    if (!Number.isInteger(maxFds) || maxFds < 1) {
      return yield* Effect.die(new Error(`NodePlatform: maxFds must be an integer of at least 1, got ${String(maxFds)}`))
    }
    if (!Number.isInteger(bufferLimit) || bufferLimit < 1) {
      return yield* Effect.die(
        new Error(`NodePlatform: bufferLimit must be an integer of at least 1, got ${String(bufferLimit)}`)
      )
    }

    const commandQueue = yield* Queues.make<number>()
    const childExits = yield* Children.exits
    const watches = new Map<number, Watch>()
    // The latest watch of each fd whose scope is still open, finished or not:
    // bytes read before a hang-up stay readable until that scope closes.
    const readers = new Map<number, Watch>()
    let closed = false

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        // A watch whose scope outlives the platform's would keep its Node
        // stream (and the event loop of the process) alive.
        Queues.closeUnsafe(commandQueue)
        for (const entry of readers.values()) {
          entry.finished = true
          entry.socket?.destroy()
          Queues.closeUnsafe(entry.queue)
        }
        watches.clear()
        readers.clear()
      })
    )

    // ---- signals ----

    const signals = (names: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        if (closed) return yield* Effect.fail(Platform.closed("node-portable", "signals"))
        // Checked before anything is claimed, so a bad list claims nothing.
        const checked = Platform.validateSignals(names, signalSupport)
        if (Result.isFailure(checked)) return yield* Effect.fail(checked.failure)
        const queue = yield* Queues.make<string>()
        const unique = Array.from(new Set(checked.success))
        const listeners = unique.map((name) => [name as NodeJS.Signals, () => Queues.offer(queue, name)] as const)
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            // Installed synchronously, before `signals` returns: from then on
            // a delivery reaches the stream instead of killing the process.
            for (const [name, listener] of listeners) {
              guardSignal(name)
              process.on(name, listener)
            }
          }),
          () =>
            Effect.sync(() => {
              for (const [name, listener] of listeners) process.removeListener(name, listener)
              Queues.closeUnsafe(queue)
            })
        )
        return Queues.stream(queue)
      })

    // ---- timer ----

    const timer = Effect.gen(function*() {
      if (closed) return yield* Effect.fail(Platform.closed("node-portable", "timer"))
      return yield* Platform.clockTimer({
        name: "NodePlatform",
        ...(options.timerChunkMillis === undefined ? {} : { chunkMillis: options.timerChunkMillis })
      })
    })

    // ---- commands ----

    const send = (byte: number) =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(Platform.closed("node-portable", "command"))
        if (!Platform.isCommandByte(byte)) return Effect.fail(Platform.invalidByte(byte))
        Queues.offer(commandQueue, byte)
        return Effect.void
      })

    const unsafeSend = (byte: number): void => {
      if (closed) throw Platform.closed("node-portable", "command")
      if (!Platform.isCommandByte(byte)) throw Platform.invalidByte(byte)
      Queues.offer(commandQueue, byte)
    }

    // ---- watch ----

    const badFd = (fd: number, detail: string, errno?: string) =>
      Effect.fail(error("watch", "BadFd", `fd ${String(fd)} ${detail}`, errno))

    const report = (watch: Watch, readiness: Omit<Platform.Readiness, "write">) => {
      const r: Platform.Readiness = { ...readiness, write: false }
      if (r.hup || r.error) {
        if (watch.finished) return
        watch.finished = true
        // Freed as soon as the final report exists, so the fd can be watched
        // again (and the slot counts as free) without waiting for the scope.
        if (watches.get(watch.fd) === watch) watches.delete(watch.fd)
      } else if (watch.finished || !r.read) return
      Queues.offer(watch.queue, r)
    }

    // Moves what Node has buffered into the watch's own buffer, up to the
    // limit: past it Node stops reading and the kernel pushes back on the
    // writer, as an unread pipe would.
    const drain = (watch: Watch) => {
      const socket = watch.socket
      if (socket === undefined || watch.finished) return
      while (watch.size < bufferLimit) {
        const chunk = socket.read() as Buffer | null
        if (chunk === null) break
        watch.chunks.push(chunk)
        watch.size += chunk.length
      }
      if (watch.size > 0 && !watch.notified && watch.interest.read === true) {
        watch.notified = true
        report(watch, { read: true, hup: false, error: false })
      }
    }

    /** Opens the Node stream the watch reads through, and says whether it owns the user's fd. */
    const openStream = (fd: number, stat: fs.Stats): Effect.Effect<net.Socket, Platform.PlatformError> =>
      Effect.suspend(() => {
        let own = fd
        if (stat.isFIFO()) {
          // A second open file description of the same pipe: Node closes the
          // fd it reads from when the stream ends, and this one is ours, so
          // the user's fd stays open (and keeps its flags). Non-blocking, so
          // that a FIFO without writers opens at once instead of hanging.
          try {
            own = fs.openSync(`/dev/fd/${fd}`, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
          } catch (cause) {
            return Effect.fail(error(
              "watch",
              "System",
              `fd ${fd} is a pipe but could not be reopened through /dev/fd/${fd} for reading: ${String(cause)}`,
              errnoOf(cause)
            ))
          }
        }
        try {
          return Effect.succeed(new net.Socket({ fd: own, readable: true, writable: false }))
        } catch (cause) {
          if (own !== fd) fs.closeSync(own)
          if (errnoOf(cause) === "EEXIST") {
            // libuv refuses a second handle on an fd its loop already polls.
            return Effect.fail(error(
              "watch",
              "AlreadyWatched",
              `fd ${fd} is already polled by Node itself (a net.Socket, process.stdin or another Node stream ` +
                "holds it); read it through that Node object, or destroy it before watching the fd",
              "EEXIST"
            ))
          }
          return Effect.fail(error(
            "watch",
            "Unsupported",
            `fd ${fd} cannot be read by a Node stream (only pipes, FIFOs and stream sockets can): ${String(cause)}`,
            errnoOf(cause)
          ))
        }
      })

    const watch = (fd: number, interest: Platform.Interest) =>
      Effect.gen(function*() {
        if (closed) return yield* Effect.fail(Platform.closed("node-portable", "watch"))
        if (!Number.isInteger(fd) || fd < 0) return yield* badFd(fd, "is not an fd: fds are non-negative integers")
        if (interest.write === true) {
          return yield* Effect.fail(error(
            "watch",
            "Unsupported",
            `fd ${fd}: the node-portable layer reports read readiness and hang-ups only, not write readiness; ` +
              `write with a Node stream (which queues) or use the linux-native layer`
          ))
        }
        let stat: fs.Stats
        try {
          stat = fs.fstatSync(fd)
        } catch (cause) {
          const errno = errnoOf(cause)
          return yield* badFd(fd, errno === "EBADF" ? "is not open" : `cannot be inspected: ${String(cause)}`, errno)
        }
        if (stat.isFile()) {
          return yield* badFd(fd, "is a regular file, which is always ready and cannot be watched; read it directly")
        }
        if (stat.isDirectory() || stat.isBlockDevice()) {
          return yield* badFd(fd, "is a directory or a block device, which cannot be watched")
        }
        if (!stat.isFIFO() && !stat.isSocket()) {
          return yield* Effect.fail(error(
            "watch",
            "Unsupported",
            `fd ${fd} is ${stat.isCharacterDevice() ? "a character device (a terminal, or /dev/null, which is always ready)" : "neither a pipe, a FIFO nor a socket"}; ` +
              `the node-portable layer watches only pipes, FIFOs and sockets: use the linux-native layer for ` +
              `terminals, or read a device such as /dev/null directly`
          ))
        }
        if (watches.has(fd)) {
          return yield* Effect.fail(error(
            "watch",
            "AlreadyWatched",
            `fd ${fd} is already watched; close the scope of the first watch before watching it again`
          ))
        }
        if (watches.size >= maxFds) {
          return yield* Effect.fail(error(
            "watch",
            "TooManyFds",
            `${watches.size} fds are watched and the limit is ${maxFds}; ` +
              `close some watches or raise maxFds in NodePlatform.layer options`
          ))
        }
        const queue = yield* Queues.make<Platform.Readiness>()
        const entry: Watch = {
          fd,
          interest: { ...interest },
          queue,
          chunks: [],
          size: 0,
          notified: false,
          finished: false,
          socket: undefined
        }
        yield* Effect.acquireRelease(
          Effect.flatMap(openStream(fd, stat), (socket) =>
            Effect.sync(() => {
              // Bytes an earlier watch read and nobody took come first.
              const previous = readers.get(fd)
              if (previous !== undefined) {
                entry.chunks = previous.chunks
                entry.size = previous.size
                previous.chunks = []
                previous.size = 0
              }
              entry.socket = socket
              watches.set(fd, entry)
              readers.set(fd, entry)
              socket.on("readable", () => drain(entry))
              socket.on("end", () => report(entry, { read: entry.size > 0 && interest.read === true, hup: true, error: false }))
              socket.on("error", () => report(entry, { read: false, hup: false, error: true }))
              socket.on("close", () => report(entry, { read: false, hup: true, error: false }))
            })),
          () =>
            Effect.sync(() => {
              entry.finished = true
              if (watches.get(fd) === entry) watches.delete(fd)
              if (readers.get(fd) === entry) readers.delete(fd)
              entry.socket?.destroy()
              Queues.closeUnsafe(queue)
            })
        )
        if (entry.size > 0) drain(entry)
        return Stream.takeUntil(Queues.stream(queue), (r) => r.hup || r.error)
      })

    const read = (fd: number) =>
      Effect.suspend(() => {
        const entry = readers.get(fd)
        if (entry === undefined) {
          return Effect.fail(error(
            "read",
            "BadFd",
            `fd ${String(fd)} is not watched by this node-portable platform, so it has no bytes to give; watch it first`
          ))
        }
        const bytes = entry.chunks.length === 1 ? entry.chunks[0] : Buffer.concat(entry.chunks)
        entry.chunks = []
        entry.size = 0
        entry.notified = false
        // Room again: take what Node buffered meanwhile, which may report again.
        drain(entry)
        return Effect.succeed(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length))
      })

    const platform: NodePlatform.NodePlatform = {
      info: { name: NAME, maxFds, realtimeSignals: false },
      signals,
      timer,
      watch,
      commands: {
        send,
        unsafeSend,
        received: Queues.stream(commandQueue)
      },
      childExits,
      read
    }
    instances.set(platform, platform)
    return platform
  })
