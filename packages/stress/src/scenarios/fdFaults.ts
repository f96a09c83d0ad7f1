/**
 * Fd faults: watched fds whose peer hangs up, that are closed under the
 * loop, that never get a writer, or whose socket is reset; and watches of fds
 * that are not open. One loop lives through every round: each fault must
 * reach its handler (as `hup`/`error`) or its caller (as a typed error), and
 * after the last round no fd, watch slot or handler may be left.
 *
 * @since 0.1.0
 */
import { Event, EventLoop, Platform } from "@refpersys/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import { Checks } from "../internal/checks.js"
import * as Fifo from "../internal/fifo.js"
import { waitFor } from "../internal/probes.js"
import * as Runtime from "../internal/runtime.js"
import * as Scenario from "../Scenario.js"

const NAME = "fd-faults"

const sizes = { small: { rounds: 15 }, full: { rounds: 200 } }

/** What a case reports: whether the fault reached whoever must know, and how. */
interface Told {
  readonly told: boolean
  readonly how: string
}

/** A fault case; `fifo` is a FIFO of its own, with no end open. */
type Case = (loop: EventLoop.EventLoop, fifo: Fifo.Fifo) => Effect.Effect<Told, unknown, Scope.Scope>

/** Watches `fd` and resolves with the first event that says hup or error (or times out). */
const watchUntilFault = (
  loop: EventLoop.EventLoop,
  fd: number,
  interest: Platform.Interest,
  onEvent: (event: Event.FdReady) => void = () => {}
) =>
  Effect.gen(function*() {
    const fault = yield* Deferred.make<Event.FdReady>()
    yield* loop.watchFd(fd, interest, {
      explanation: `fd-faults: fd ${fd}`,
      handle: (event) =>
        Effect.sync(() => {
          onEvent(event)
          if (event.hup || event.error) Deferred.doneUnsafe(fault, Exit.succeed(event))
        })
    })
    return Deferred.await(fault).pipe(
      Effect.timeout("10 seconds"),
      Effect.map((event): Told => ({ told: true, how: event.error ? "error" : "hup" })),
      Effect.orElseSucceed((): Told => ({ told: false, how: "no hup/error event within 10 s" }))
    )
  })

/** Drains a non-blocking fd; `true` at end of file. */
const drain = (fd: number): boolean => {
  for (;;) {
    const chunk = Fifo.readAvailable(fd)
    if (chunk === "eof") return true
    if (chunk.length === 0) return false
  }
}

/** The writer closes: the reader's handler gets the data, then the hang-up. */
const peerHangsUp: Case = (loop, fifo) =>
  Effect.gen(function*() {
    const reader = yield* Fifo.own(() => fifo.open("read"))
    const writer = yield* Fifo.own(() => fifo.open("write"))
    const told = yield* watchUntilFault(loop, reader.fd, { read: true }, () => void drain(reader.fd))
    fs.writeSync(writer.fd, "last words\n")
    writer.close()
    return yield* told
  })

/** The handler closes the fd it is watching (a common way to finish with a peer). */
const closedInHandler: Case = (loop, fifo) =>
  Effect.gen(function*() {
    const reader = yield* Fifo.own(() => fifo.open("read"))
    const writer = yield* Fifo.own(() => fifo.open("write"))
    const told = yield* watchUntilFault(loop, reader.fd, { read: true }, (event) => {
      if (!event.hup && !event.error && !reader.closed) {
        drain(reader.fd)
        reader.close()
      }
    })
    fs.writeSync(writer.fd, "close me\n")
    return yield* told
  })

/** Watching an fd number that is not open: a typed BadFd, and no handler left registered. */
const notOpen: Case = (loop) =>
  Effect.gen(function*() {
    const fd = fs.openSync(os.devNull, "r")
    fs.closeSync(fd)
    const before = (yield* loop.dump).handlers.length
    const result = yield* Effect.result(
      Effect.scoped(loop.watchFd(fd, { read: true }, { explanation: "fd-faults: not open", handle: () => Effect.void }))
    )
    const inScope = yield* Effect.result(
      loop.watchFd(fd, { read: true }, { explanation: "fd-faults: not open, in the round's scope", handle: () => Effect.void })
    )
    const after = (yield* loop.dump).handlers.length
    const typed = (e: typeof result) =>
      e._tag === "Failure" && e.failure instanceof Platform.PlatformError && e.failure.reason === "BadFd"
    if (!typed(result) || !typed(inScope)) return { told: false, how: `expected BadFd, got ${String(result)}` }
    if (after !== before) return { told: false, how: `a failed watchFd left ${after - before} handler(s) registered` }
    return { told: true, how: "BadFd" }
  })

/** A FIFO nobody opened for writing: the watch stays quiet (no spinning) until a writer comes and goes. */
const noWriter: Case = (loop, fifo) =>
  Effect.gen(function*() {
    const reader = yield* Fifo.own(() => fifo.open("read"))
    let quietCalls = 0
    let writerCame = false
    const told = yield* watchUntilFault(loop, reader.fd, { read: true }, () => {
      if (!writerCame) quietCalls++
      drain(reader.fd)
    })
    // Let the loop run a while with the watch armed: a command round trip through it.
    yield* roundTrip(loop)
    if (quietCalls > 0) return { told: false, how: `${quietCalls} event(s) before any writer` }
    writerCame = true
    const writer = yield* Fifo.own(() => fifo.open("write"))
    fs.writeSync(writer.fd, "hello\n")
    writer.close()
    return yield* told
  })

/** The other end is gone before the watch starts: watching the write end reports an error at once. */
const readerGone: Case = (loop, fifo) =>
  Effect.gen(function*() {
    const reader = yield* Fifo.own(() => fifo.open("read"))
    const writer = yield* Fifo.own(() => fifo.open("write"))
    reader.close()
    return yield* yield* watchUntilFault(loop, writer.fd, { write: true })
  })

interface Pair {
  readonly server: net.Server
  readonly client: net.Socket
  /** The accepted side, paused: Node does not poll its fd, so the platform can. */
  readonly accepted: net.Socket
  readonly fd: number
}

const socketPair: Effect.Effect<Pair, never, Scope.Scope> = Effect.acquireRelease(
  Effect.callback<Pair>((resume) => {
    const server = net.createServer({ pauseOnConnect: true })
    server.once("connection", (accepted) => {
      accepted.on("error", () => {})
      const fd = (accepted as unknown as { _handle: { fd: number } })._handle.fd
      resume(Effect.succeed({ server, client, accepted, fd }))
    })
    let client!: net.Socket
    server.listen(0, "127.0.0.1", () => {
      client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1")
      // A reset connection reports ECONNRESET; that is the point.
      client.on("error", () => {})
    })
  }),
  ({ accepted, client, server }) =>
    Effect.callback<void>((resume) => {
      client.destroy()
      accepted.destroy()
      server.close(() => resume(Effect.void))
    })
)

/** The peer resets the connection (RST): the handler is told. */
const socketReset: Case = (loop) =>
  Effect.gen(function*() {
    const pair = yield* socketPair
    const told = yield* watchUntilFault(loop, pair.fd, { read: true })
    pair.client.resetAndDestroy()
    return yield* told
  })

/** The peer closes the connection cleanly (FIN): the handler is told. */
const socketEnd: Case = (loop) =>
  Effect.gen(function*() {
    const pair = yield* socketPair
    const told = yield* watchUntilFault(loop, pair.fd, { read: true })
    pair.client.end()
    return yield* told
  })

const cases: ReadonlyArray<readonly [string, Case]> = [
  ["peer hangs up", peerHangsUp],
  ["fd closed in its handler", closedInHandler],
  ["watch of an fd that is not open", notOpen],
  ["FIFO without a writer", noWriter],
  ["reader gone before the watch", readerGone],
  ["socket reset by peer", socketReset],
  ["socket closed by peer", socketEnd]
]

/** A command byte sent through the loop and handled: the loop is alive. */
const roundTrip = (loop: EventLoop.EventLoop) =>
  Effect.gen(function*() {
    const before = (yield* loop.stats).events.Command
    yield* loop.send(0x2e)
    return yield* waitFor(() => Effect.runSync(loop.stats).events.Command > before, "10 seconds")
  })

/**
 * The scenario.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "hang-ups, fds closed under the loop, FIFOs without writers, reset sockets and watches of closed fds each reach the handler or the caller as a typed fault; the loop goes on; no fd, watch slot or handler leaks",
  body: (size) =>
    Effect.gen(function*() {
      const n = sizes[size]
      const checks = new Checks()
      // Few watch slots, so that a slot leaked by any round makes a later watch fail with TooManyFds.
      const { loop } = yield* Runtime.make({ platform: { maxFds: 4 }, loop: { signals: [] } })
      yield* loop.register({ explanation: "fd-faults: alive", match: { _tag: "Command", byte: 0x2e }, handle: () => Effect.void })
      const fifos = yield* Fifo.makeMany(cases.length)
      const handlersBefore = (yield* loop.dump).handlers.length
      const byCase = new Map<string, { told: number; failures: number }>(cases.map(([name]) => [name, { told: 0, failures: 0 }]))
      const hows = new Map<string, number>()
      let sent = 0
      let told = 0
      for (let round = 0; round < n.rounds; round++) {
        for (const [i, [name, run]] of cases.entries()) {
          sent++
          const result = yield* Effect.scoped(run(loop, fifos[i])).pipe(
            Effect.catchCause((cause) => Effect.succeed<Told>({ told: false, how: `failed: ${String(cause)}` }))
          )
          const entry = byCase.get(name)!
          if (result.told) {
            told++
            entry.told++
            hows.set(`${name}: ${result.how}`, (hows.get(`${name}: ${result.how}`) ?? 0) + 1)
          } else {
            entry.failures++
            checks.add(`round ${round}, ${name}: ${result.how}`)
          }
        }
        checks.that(yield* roundTrip(loop), `the loop did not answer after round ${round}`)
        if ((round + 1) % Math.ceil(n.rounds / 4) === 0) {
          yield* Scenario.progress(NAME, `${round + 1} of ${n.rounds} rounds, ${told} of ${sent} faults told`)
        }
      }
      const handlersAfter = (yield* loop.dump).handlers.length
      checks.equal("handlers registered after every round", handlersAfter, handlersBefore)
      yield* loop.quit
      const stopped = yield* loop.awaitStop
      checks.that(stopped.agenda.stats.total.balanced, "agenda accounting does not add up")
      return {
        sent,
        arrived: told,
        lost: sent - told,
        violations: checks.list,
        figures: {
          rounds: n.rounds,
          ...Object.fromEntries([...hows].map(([k, v]) => [k, v])),
          fdReadyEvents: stopped.loop.events.FdReady,
          handlerFailures: stopped.loop.handlerFailures
        }
      }
    })
})
