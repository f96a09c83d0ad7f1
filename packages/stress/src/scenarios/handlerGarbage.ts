/**
 * Handler garbage: handlers that return `undefined`, `null`, `42` or a
 * promise, that throw or die, inline and on the agenda; posts of values that
 * are not events; a flood of unknown command bytes through the real
 * self-pipe. The loop must keep dispatching, count every failure, refuse every
 * bad post with a typed error, keep its warning lines bounded, and still quit
 * on `Q`.
 *
 * @since 0.1.0
 */
import type { Event, EventLoop } from "@refpersys/core"
import { Platform } from "@refpersys/core"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { Checks } from "../internal/checks.js"
import { Prng } from "../internal/prng.js"
import { waitFor } from "../internal/probes.js"
import * as Runtime from "../internal/runtime.js"
import * as Scenario from "../Scenario.js"

const NAME = "handler-garbage"

const sizes = {
  small: { rounds: 50, flood: 20_000 },
  full: { rounds: 2_000, flood: 1_048_576 }
}

/** Unknown-byte warnings a second (the loop's option, set here explicitly). */
const WARNINGS_PER_SECOND = 10

/** A handler as a JS caller (or `any`) can write it: the types would refuse these. */
const untyped = (result: () => unknown) => result as unknown as () => Effect.Effect<void>

/** Inline handlers, one byte each, and how each one breaks. */
const inline: ReadonlyArray<readonly [string, () => Effect.Effect<void>]> = [
  ["a", untyped(() => undefined)],
  ["b", untyped(() => null)],
  ["c", untyped(() => 42)],
  ["d", untyped(() => Promise.resolve("not an Effect"))],
  ["e", () => {
    throw new Error("garbage: a handler that throws")
  }],
  ["f", () => Effect.die("garbage: a handler that dies")]
]

/** Handlers submitted to the agenda: their tasklets fail, counted by the agenda. */
const submitted: ReadonlyArray<readonly [string, () => Effect.Effect<void>]> = [
  ["g", untyped(() => undefined)],
  ["h", () => {
    throw new Error("garbage: a submitted handler that throws")
  }]
]

const garbagePosts: ReadonlyArray<unknown> = [
  null,
  undefined,
  {},
  42,
  "Q",
  { _tag: "Nope" },
  { _tag: "Command", byte: 999, at: 0 },
  { _tag: "Signal", at: 0 },
  { _tag: "ChildExit", pid: "1", code: null, signal: null, at: 0 }
]

/** Bytes with no binding: not a..z (bound below or unused), not D, G, Q, X. */
const unknownByte = (prng: Prng): number => {
  for (;;) {
    const byte = prng.int(0, 255)
    if (!(byte >= 0x61 && byte <= 0x7a) && byte !== 0x44 && byte !== 0x47 && byte !== 0x51 && byte !== 0x58) return byte
  }
}

interface Lines {
  unknownSingle: number
  unknownSummary: number
  handlerFailure: number
  other: number
  readonly samples: Array<string>
}

const messageOf = (message: unknown): string =>
  (Array.isArray(message) ? message : [message]).map((p) => typeof p === "string" ? p : String(p)).join(" ")

const counting = (lines: Lines) =>
  Logger.layer([
    Logger.make(({ logLevel, message }) => {
      if (!LogLevel.isGreaterThanOrEqualTo(logLevel, "Warn")) return
      const text = messageOf(message)
      if (text.startsWith("unknown command byte")) lines.unknownSingle++
      else if (text.includes("more unknown command bytes")) lines.unknownSummary++
      else if (text.startsWith("handler \"")) lines.handlerFailure++
      else {
        lines.other++
        if (lines.samples.length < 5) lines.samples.push(`${logLevel}: ${text.slice(0, 200)}`)
      }
    })
  ])

const isPipeFull = (error: unknown) => error instanceof Platform.PlatformError && error.errno === "EAGAIN"

const statsNow = (loop: EventLoop.EventLoop) => Effect.runSync(loop.stats)

const run = (size: Scenario.Size) => {
  const lines: Lines = { unknownSingle: 0, unknownSummary: 0, handlerFailure: 0, other: 0, samples: [] }
  return Effect.scoped(Effect.gen(function*() {
    const n = sizes[size]
    const prng = new Prng(0x6a7b)
    const checks = new Checks()
    const { agenda, loop } = yield* Runtime.make({
      agenda: { workers: 2, logFailures: false },
      loop: { signals: [], unknownCommandWarnings: WARNINGS_PER_SECOND }
    })
    for (const [byte, handle] of inline) {
      yield* loop.register({ explanation: `garbage inline ${byte}`, match: { _tag: "Command", byte }, handle })
    }
    for (const [byte, handle] of submitted) {
      yield* loop.register({ explanation: `garbage submitted ${byte}`, match: { _tag: "Command", byte }, handle, run: "Normal" })
    }
    let good = 0
    yield* loop.register({
      explanation: "garbage: the one good handler",
      match: { _tag: "Command", byte: "z" },
      handle: () => Effect.sync(() => void good++)
    })
    const received = () => statsNow(loop).events.Command
    let sent = 0
    let pipeFull = 0
    /** Sends through the real self-pipe; a full pipe is a typed refusal: wait for the loop to read, retry. */
    const send = (byte: number) =>
      Effect.gen(function*() {
        for (;;) {
          const error = yield* Effect.flip(loop.send(byte)).pipe(Effect.orElseSucceed(() => undefined))
          if (error === undefined) {
            sent++
            return
          }
          if (!isPipeFull(error)) {
            checks.add(`sending ${byte} failed: ${String(error)}`)
            return
          }
          pipeFull++
          const before = received()
          if (!(yield* waitFor(() => received() > before, "10 seconds"))) {
            checks.add("the loop stopped reading commands")
            return
          }
        }
      })
    const start = performance.now()
    // Rounds of every kind of garbage, each followed by a byte the good handler must still get.
    for (let round = 0; round < n.rounds; round++) {
      for (const [byte] of [...inline, ...submitted]) yield* send(byte.charCodeAt(0))
      yield* send(0x7a)
    }
    // Posts of garbage: a typed refusal each, nothing queued.
    let invalidEvents = 0
    for (const value of garbagePosts) {
      const error = yield* Effect.flip(loop.post(value as Event.Event)).pipe(Effect.orElseSucceed(() => undefined))
      if (error?._tag === "InvalidEvent") invalidEvents++
      else checks.add(`post(${JSON.stringify(value)}) was not refused with InvalidEvent`)
    }
    // A plain value that is an event is decoded and dispatched.
    yield* loop.post({ _tag: "Command", byte: 0x7a, at: 0 } as unknown as Event.Event)
    yield* Scenario.progress(NAME, `${n.rounds} rounds of garbage handlers, ${garbagePosts.length} garbage posts`)
    // The flood of unknown bytes.
    for (let i = 0; i < n.flood; i++) yield* send(unknownByte(prng))
    yield* Scenario.progress(NAME, `${n.flood.toLocaleString()} unknown command bytes sent`)
    checks.that(yield* waitFor(() => received() >= sent + 1, "60 seconds"), "not every command byte was dispatched within 60 seconds")
    const expectedTasklets = n.rounds * submitted.length
    checks.that(
      yield* waitFor(() => Effect.runSync(agenda.stats).total.failed >= expectedTasklets, "30 seconds"),
      "the submitted garbage handlers' tasklets did not all fail within 30 seconds"
    )
    const elapsedSeconds = (performance.now() - start) / 1000
    const stats = statsNow(loop)
    checks.equal("state while running", stats.state, "running")
    checks.equal("command events", stats.events.Command, sent + 1)
    checks.equal("inline handler failures counted", stats.handlerFailures, n.rounds * inline.length)
    checks.equal("good handler calls", good, n.rounds + 1)
    checks.equal("invalid posts counted", stats.invalidPosts, garbagePosts.length)
    checks.equal("unknown command bytes counted", stats.unknownCommands, n.flood)
    checks.equal("dispatch failures (nothing escaped a handler's isolation)", stats.dispatchFailures, 0)
    checks.equal("failure warnings, one per inline failure", lines.handlerFailure, n.rounds * inline.length)
    // At most N lines a second plus one summary a second, over the time the flood took (and one window of slack).
    const windows = Math.ceil(elapsedSeconds) + 1
    checks.that(
      lines.unknownSingle <= WARNINGS_PER_SECOND * windows,
      `${lines.unknownSingle} unknown-byte warnings in ${elapsedSeconds.toFixed(1)} s: more than ${WARNINGS_PER_SECOND} a second`
    )
    checks.equal("unknown bytes either warned about or suppressed", lines.unknownSingle + stats.suppressedWarnings, n.flood)
    checks.equal("other warnings or errors", lines.other, 0)
    const sentBeforeQ = sent
    // Q still quits after all that.
    yield* send(0x51)
    const stopped = yield* Effect.timeout(loop.awaitStop, "30 seconds").pipe(Effect.option)
    checks.that(stopped._tag === "Some", "Q did not stop the loop within 30 seconds")
    if (stopped._tag === "Some") {
      checks.equal("stop cause", stopped.value.cause, "command Q")
      checks.that(stopped.value.agenda.stats.total.balanced, "agenda accounting does not add up")
      checks.equal("failed tasklets", stopped.value.agenda.stats.total.failed, expectedTasklets)
      // The last second's summary is written at the stop at the latest.
      checks.that(
        stopped.value.loop.suppressedWarnings === 0 || lines.unknownSummary > 0,
        "warnings were suppressed but no summary line was written"
      )
    }
    if (lines.samples.length > 0) checks.add(`unexpected log lines: ${lines.samples.join(" | ")}`)
    return {
      sent: sentBeforeQ,
      arrived: stats.events.Command - 1,
      lost: Math.max(0, sentBeforeQ - (stats.events.Command - 1)),
      violations: checks.list,
      figures: {
        commandBytesSent: sentBeforeQ,
        rounds: n.rounds,
        inlineFailuresCounted: stats.handlerFailures,
        submittedTaskletsFailed: expectedTasklets,
        goodHandlerCalls: good,
        invalidPostsRefused: invalidEvents,
        unknownBytes: stats.unknownCommands,
        unknownWarningLines: lines.unknownSingle,
        summaryLines: lines.unknownSummary,
        suppressedWarnings: stats.suppressedWarnings,
        pipeFullRefusals: pipeFull,
        floodSeconds: Number(elapsedSeconds.toFixed(2))
      }
    }
  })).pipe(Effect.provide(counting(lines)))
}

/**
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "handlers returning undefined, null, 42 or a promise, throwing or dying, inline and submitted, and posts of garbage never stop the loop: every failure is counted, every bad post refused with InvalidEvent, a flood of unknown bytes is counted in full with a bounded number of warning lines, and Q still quits",
  body: run
})
