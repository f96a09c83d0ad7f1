/**
 * The control client: talks to a running daemon through its FIFO pair.
 *
 * A connection opens `rps.out` for reading first (so no reply is missed),
 * then `rps.cmd` for writing without blocking: when no process reads
 * `rps.cmd`, that open fails with `ENXIO`, which means no daemon is running.
 * Requests carry an id; replies with other ids (stale ones left in the FIFO)
 * are skipped. One client at a time: two clients reading `rps.out` at once
 * would take each other's replies.
 *
 * The client trusts what the daemon trusts, and nothing else: the runtime
 * directory must pass `RuntimeDir.check`, and each FIFO is opened with
 * `O_NOFOLLOW` and checked by `fstat` on the fd (a FIFO of ours, mode 0600)
 * before a byte is written or read. A symbolic link, a regular file or
 * someone else's FIFO in their place is refused with reason `Untrusted`:
 * writing a request into it could overwrite a file, or hand the request to
 * another user.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as JsonRpc from "./JsonRpc.js"
import * as RuntimeDir from "./RuntimeDir.js"

/**
 * Why a call failed.
 *
 * - `NoDaemon`: no daemon runs on that runtime directory.
 * - `Timeout`: no reply in time.
 * - `Closed`: the daemon closed its reply FIFO (it stopped) before replying.
 * - `Remote`: the daemon replied with a JSON-RPC error (see `code`).
 * - `Untrusted`: the runtime directory or a FIFO is not ours (see the
 *   module doc); nothing was sent. `rps-ctl` exits with
 *   `RuntimeDir.untrustedExitCode` then.
 * - `System`: the operating system refused.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClientError extends Data.TaggedError("ClientError")<{
  readonly reason: "NoDaemon" | "Timeout" | "Closed" | "Remote" | "Untrusted" | "System"
  readonly detail: string
  /** The JSON-RPC error code, for `Remote`. */
  readonly code?: number
  readonly data?: unknown
}> {
  override get message(): string {
    return this.detail
  }
}

/**
 * An open connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  readonly files: RuntimeDir.Files
  /** Writes raw text to `rps.cmd` (add the newline yourself). */
  readonly send: (text: string) => Effect.Effect<void, ClientError>
  /**
   * The next reply line for which `accept` holds, parsed as JSON; lines
   * before it are skipped. Fails with `Timeout` or `Closed`.
   */
  readonly next: (
    accept: (reply: unknown) => boolean,
    timeout: Duration.Input
  ) => Effect.Effect<unknown, ClientError>
}

/**
 * A timeout as a `Duration`. `Duration` keeps negative values (it once
 * clamped them to zero), and a wait cannot be shorter than none: a negative
 * or unreadable timeout is zero, so the call times out at once.
 */
const timeoutOf = (input: Duration.Input): Duration.Duration => {
  const duration = Option.getOrElse(Duration.fromInput(input), () => Duration.zero)
  return Duration.isNegative(duration) ? Duration.zero : duration
}

const codeOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code

const noDaemon = (paths: RuntimeDir.Files, why: string): ClientError => {
  const pid = RuntimeDir.readPid(paths)
  const stale = pid !== undefined && !RuntimeDir.isAlive(pid)
  return new ClientError({
    reason: "NoDaemon",
    detail: `no daemon is running on ${paths.dir}: ${why}` +
      (stale ? ` (pid ${pid}, recorded in ${paths.pid}, is gone; the next daemon cleans up)` : "") +
      "; start one with `npm start`, or pass the --runtime-dir it uses"
  })
}

const system = (what: string, error: unknown): ClientError =>
  new ClientError({ reason: "System", detail: `${what}: ${error instanceof Error ? error.message : String(error)}` })

/** A runtime directory error as the client's: `Untrusted` stays `Untrusted`, the rest is `System`. */
const fromRuntimeDir = (what: string) => (error: RuntimeDir.RuntimeDirError): ClientError =>
  error.reason === "Untrusted"
    ? new ClientError({ reason: "Untrusted", detail: error.message })
    : system(what, error)

/**
 * Opens a FIFO of the daemon (see `RuntimeDir.openFifo`), with the errors a
 * client means: a missing FIFO, or none read, is `NoDaemon`.
 */
const openFifo = (paths: RuntimeDir.Files, where: string, flags: number): Effect.Effect<number, ClientError> =>
  RuntimeDir.openFifo(where, flags).pipe(
    Effect.mapError((error) => {
      switch (error.code) {
        case "ENOENT":
          return noDaemon(paths, `${where} does not exist`)
        case "ENXIO":
          return noDaemon(paths, `nothing reads ${where}`)
        default:
          return fromRuntimeDir(`opening ${where}`)(error)
      }
    })
  )

/**
 * Connects to the daemon of `dir` for the scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Client } from "@refpersys/daemon"
 *
 * const raw = Effect.scoped(Effect.gen(function*() {
 *   const connection = yield* Client.connect("/tmp/rps-example")
 *   yield* connection.send("{ not json\n")
 *   return yield* connection.next(() => true, "5 seconds") // the -32700 reply
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (dir: string): Effect.Effect<Connection, ClientError, Scope.Scope> =>
  Effect.gen(function*() {
    const paths = RuntimeDir.files(dir)
    const lines = yield* Queue.unbounded<string | null>()
    const found = yield* RuntimeDir.check(paths.dir).pipe(Effect.mapError(fromRuntimeDir(`checking ${paths.dir}`)))
    if (found === "missing") return yield* noDaemon(paths, `${paths.dir} does not exist`)
    yield* Effect.acquireRelease(
      openFifo(paths, paths.out, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK).pipe(Effect.flatMap((fd) =>
        Effect.try({
          try: () => {
            const socket = new net.Socket({ fd, readable: true, writable: false })
            let rest = ""
            socket.setEncoding("utf8")
            socket.on("data", (chunk: string) => {
              const parts = (rest + chunk).split("\n")
              rest = parts.pop() ?? ""
              for (const part of parts) Queue.offerUnsafe(lines, part)
            })
            socket.on("end", () => Queue.offerUnsafe(lines, null))
            socket.on("error", () => Queue.offerUnsafe(lines, null))
            return socket
          },
          catch: (error) => {
            fs.closeSync(fd)
            return system(`reading ${paths.out}`, error)
          }
        })
      )),
      (socket) => Effect.sync(() => socket.destroy())
    )
    const cmdFd = yield* Effect.acquireRelease(
      openFifo(paths, paths.cmd, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK),
      (fd) => Effect.sync(() => fs.closeSync(fd))
    )

    const send = (text: string): Effect.Effect<void, ClientError> => {
      let bytes = Buffer.from(text)
      const attempt: Effect.Effect<boolean, ClientError> = Effect.try({
        try: () => {
          while (bytes.length > 0) {
            let n: number
            try {
              n = fs.writeSync(cmdFd, bytes)
            } catch (error) {
              if (codeOf(error) === "EAGAIN") return false
              throw error
            }
            bytes = bytes.subarray(n)
          }
          return true
        },
        catch: (error) =>
          codeOf(error) === "EPIPE"
            ? noDaemon(paths, `the daemon stopped reading ${paths.cmd}`)
            : system(`writing to ${paths.cmd}`, error)
      })
      // A full FIFO means the daemon is behind: wait for room, a little.
      const loop: Effect.Effect<void, ClientError> = Effect.flatMap(
        attempt,
        (done) => done ? Effect.void : Effect.andThen(Effect.sleep("10 millis"), loop)
      )
      return loop.pipe(
        Effect.timeoutOrElse({
          duration: "5 seconds",
          orElse: () =>
            Effect.fail(
              new ClientError({ reason: "Timeout", detail: `${paths.cmd} stayed full for 5 s: the daemon is not reading it` })
            )
        })
      )
    }

    const next = (accept: (reply: unknown) => boolean, timeout: Duration.Input) => {
      const take: Effect.Effect<unknown, ClientError> = Effect.flatMap(Queue.take(lines), (line) => {
        if (line === null) {
          return Effect.fail(
            new ClientError({ reason: "Closed", detail: `the daemon closed ${paths.out} before replying (it stopped)` })
          )
        }
        let value: unknown
        try {
          value = JSON.parse(line)
        } catch {
          // A torn line from a reply the daemon discarded; not ours.
          return take
        }
        return accept(value) ? Effect.succeed(value) : take
      })
      const duration = timeoutOf(timeout)
      return take.pipe(
        Effect.timeoutOrElse({
          duration,
          orElse: () => {
            const pid = RuntimeDir.readPid(paths)
            return Effect.fail(
              new ClientError({
                reason: "Timeout",
                detail: `no reply from the daemon${pid === undefined ? "" : ` (pid ${pid})`} on ${paths.dir} within ${
                  Duration.format(duration)
                }`
              })
            )
          }
        })
      )
    }

    return { files: paths, send, next }
  })

let counter = 0

/**
 * Options of {@link call}.
 *
 * @since 0.1.0
 * @category models
 */
export interface CallOptions {
  readonly params?: Readonly<Record<string, unknown>>
  /** How long to wait for the reply (default 5 seconds). */
  readonly timeout?: Duration.Input
}

/**
 * Calls a method of the daemon of `dir` and succeeds with its result (still
 * encoded, as JSON). A JSON-RPC error fails with reason `Remote`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Client, Output } from "@refpersys/daemon"
 *
 * const stats = Client.call("/tmp/rps-example", "stats").pipe(
 *   Effect.flatMap(Schema.decodeUnknownEffect(Output.StatsResult))
 * )
 * ```
 *
 * @since 0.1.0
 * @category calling
 */
export const call = (dir: string, method: string, options: CallOptions = {}): Effect.Effect<unknown, ClientError> =>
  Effect.scoped(Effect.gen(function*() {
    const connection = yield* connect(dir)
    const id = `ctl-${process.pid}-${++counter}`
    yield* connection.send(JsonRpc.requestLine(method, id, options.params) + "\n")
    const reply = yield* connection.next(
      (value) => typeof value === "object" && value !== null && (value as { id?: unknown }).id === id,
      options.timeout ?? "5 seconds"
    )
    const decoded = JsonRpc.decodeResponse(reply)
    if (Result.isFailure(decoded)) {
      return yield* new ClientError({ reason: "System", detail: `the daemon sent a reply that is not JSON-RPC 2.0: ${JSON.stringify(reply)}` })
    }
    const response = decoded.success
    if ("error" in response) {
      return yield* new ClientError({
        reason: "Remote",
        detail: `the daemon answered ${method} with error ${response.error.code}: ${response.error.message}`,
        code: response.error.code,
        data: response.error.data
      })
    }
    return response.result
  }))
