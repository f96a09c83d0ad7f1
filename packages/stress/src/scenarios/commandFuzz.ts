/**
 * Command fuzz: random bytes (every value, bursts far longer than the
 * self-pipe holds) into the command channel, and malformed JSON-RPC lines
 * through a real FIFO read by a line-splitting handler. The loop must never
 * die, every byte must arrive in order, and bad input must be counted.
 *
 * @since 0.1.0
 */
import type { EventLoop } from "@refpersys/core"
import { Platform } from "@refpersys/core"
import * as Effect from "effect/Effect"
import { Checks } from "../internal/checks.js"
import * as Fifo from "../internal/fifo.js"
import { classify, type LineClass, LineSplitter } from "../internal/lines.js"
import { Prng } from "../internal/prng.js"
import { waitFor } from "../internal/probes.js"
import * as Runtime from "../internal/runtime.js"
import * as Scenario from "../Scenario.js"

const NAME = "command-fuzz"

const sizes = {
  small: { bursts: 8, burstMax: 1_000, longBurst: 70_000, lines: 1_000, hugeLines: 2, hugeSize: 100_000 },
  full: { bursts: 200, burstMax: 4_000, longBurst: 400_000, lines: 20_000, hugeLines: 5, hugeSize: 1_048_576 }
}

const Q = 0x51
const X = 0x58
const D = 0x44
const G = 0x47
const bound = (byte: number) => byte >= 0x61 && byte <= 0x7a // 'a'..'z' have user handlers
const builtin = (byte: number) => byte === D || byte === G || byte === Q || byte === X
/** Random filler: any byte but the four built-in commands (D and G are injected at a measured rate). */
const filler = (prng: Prng): number => {
  for (;;) {
    const byte = prng.int(0, 255)
    if (!builtin(byte)) return byte
  }
}

const isPipeFull = (error: unknown) => error instanceof Platform.PlatformError && error.errno === "EAGAIN"

// ---------------------------------------------------------------- bytes

const commandBytes = (size: Scenario.Size) =>
  Effect.scoped(Effect.gen(function*() {
    const n = sizes[size]
    const prng = new Prng(0xc0de)
    const checks = new Checks()
    const { agenda, loop, platform } = yield* Runtime.make({
      agenda: { workers: 2, logFailures: false },
      loop: { signals: [] }
    })
    const handled: Array<number> = []
    for (let byte = 0x61; byte <= 0x7a; byte++) {
      yield* loop.register({
        explanation: `fuzz: byte ${String.fromCharCode(byte)}`,
        match: { _tag: "Command", byte },
        handle: (event) => Effect.sync(() => void handled.push(event.byte))
      })
    }
    const sent: Array<number> = []
    let pipeFull = 0
    const received = () => statsNow(loop).events.Command
    // Every byte once, in order (Q and X end the loop, so they come last, on purpose).
    const plan: Array<Array<number>> = [Array.from({ length: 256 }, (_, i) => i).filter((b) => b !== Q && b !== X)]
    for (let i = 0; i < n.bursts; i++) {
      const length = i === Math.floor(n.bursts / 2) ? n.longBurst : prng.int(1, n.burstMax)
      const burst: Array<number> = []
      for (let j = 0; j < length; j++) burst.push(prng.chance(1 / 20_000) ? prng.pick([D, G]) : filler(prng))
      plan.push(burst)
    }
    for (const [i, burst] of plan.entries()) {
      // Half the bursts through the loop's `send`, half straight into the pipe from plain code.
      for (let j = 0; j < burst.length; j++) {
        const byte = burst[j]
        const error = i % 2 === 0
          ? yield* Effect.flip(loop.send(byte)).pipe(Effect.orElseSucceed(() => undefined))
          : tryUnsafeSend(platform, byte)
        if (error === undefined) {
          sent.push(byte)
          continue
        }
        if (!isPipeFull(error)) {
          checks.add(`sending ${byte} failed: ${String(error)}`)
          continue
        }
        // The pipe is full: a typed refusal, never a block. Wait for the loop to drain some, then retry.
        pipeFull++
        const before = received()
        checks.that(yield* waitFor(() => received() > before, "10 seconds"), "the loop stopped reading commands")
        j--
      }
      if ((i + 1) % Math.ceil(plan.length / 4) === 0) {
        yield* Scenario.progress(NAME, `${sent.length.toLocaleString()} command bytes sent`)
      }
    }
    // Not bytes: typed errors, nothing sent.
    const invalid: ReadonlyArray<number | string> = [256, -1, 1.5, Number.NaN, "AB", ""]
    let rejected = 0
    for (const value of invalid) {
      const error = yield* Effect.flip(loop.send(value)).pipe(Effect.orElseSucceed(() => undefined))
      if (error !== undefined && error._tag === "InvalidOptions") rejected++
    }
    const rejectedByPlatform = yield* Effect.flip(platform.commands.send(300)).pipe(
      Effect.map((e) => e.reason === "InvalidByte"),
      Effect.orElseSucceed(() => false)
    )
    checks.equal("non-bytes rejected by EventLoop.send with InvalidOptions", rejected, invalid.length)
    checks.that(rejectedByPlatform, "the platform accepted 300 as a command byte")
    checks.that(yield* waitFor(() => received() >= sent.length, "30 seconds"), "not every command byte arrived within 30 seconds")
    const dump = yield* loop.dump
    const calls = (prefix: string) => dump.handlers.find((h) => h.explanation.startsWith(prefix))?.calls ?? -1
    const expectedUnknown = sent.filter((b) => !bound(b) && !builtin(b)).length
    const stats = dump.loop
    checks.equal("command events", stats.events.Command, sent.length)
    checks.equal("unknown commands counted", stats.unknownCommands, expectedUnknown)
    checks.equal("dumps (D)", calls("default: D"), sent.filter((b) => b === D).length)
    checks.equal("GC barriers requested (G)", calls("default: G"), sent.filter((b) => b === G).length)
    const expectedHandled = sent.filter(bound)
    checks.equal("bytes handled by user bindings", handled.length, expectedHandled.length)
    checks.that(handled.every((b, i) => b === expectedHandled[i]), "user-bound bytes arrived out of order")
    // Q still quits after all that.
    yield* loop.send("Q")
    const stopped = yield* loop.awaitStop
    checks.equal("stop cause", stopped.cause, "command Q")
    checks.that(stopped.agenda.stats.total.balanced, "agenda accounting does not add up")
    const gcCycles = (yield* agenda.stats).gcCycles
    // X exits a second loop in the middle of more fuzz.
    const exitCause = yield* Effect.scoped(Effect.gen(function*() {
      const second = yield* Runtime.make({ loop: { signals: [] } })
      for (let i = 0; i < 1_000; i++) yield* second.loop.send(filler(prng))
      yield* second.loop.send("X")
      return (yield* second.loop.awaitStop).cause
    }))
    checks.equal("stop cause of the second loop", exitCause, "command X")
    return {
      sent: sent.length,
      arrived: stats.events.Command,
      lost: Math.max(0, sent.length - stats.events.Command),
      checks,
      figures: {
        commandBytesSent: sent.length,
        commandEvents: stats.events.Command,
        unknownCounted: stats.unknownCommands,
        handledByUserBindings: handled.length,
        dumps: calls("default: D"),
        gcRequests: calls("default: G"),
        gcCycles,
        longestBurst: n.longBurst,
        pipeFullRefusals: pipeFull,
        typedRejections: rejected + (rejectedByPlatform ? 1 : 0),
        loopBackpressureWaits: stats.backpressureWaits
      }
    }
  }))

const statsNow = (loop: EventLoop.EventLoop) => Effect.runSync(loop.stats)

const tryUnsafeSend = (platform: Platform.Platform, byte: number): unknown => {
  try {
    platform.commands.unsafeSend(byte)
    return undefined
  } catch (error) {
    return error
  }
}

// ---------------------------------------------------------------- lines

interface Planned {
  readonly bytes: Buffer
  readonly expected: LineClass
}

const request = (prng: Prng, id: number) =>
  JSON.stringify({
    jsonrpc: "2.0",
    method: prng.pick(["status", "submit", "dump", "gc", "quit"]),
    ...(prng.chance(0.8) ? { id } : {}),
    ...(prng.chance(0.5) ? { params: { priority: prng.pick(["High", "Normal", "Low"]), n: prng.int(0, 1e6) } } : {})
  })

/** One line of each kind the reader must survive, with the class it must get. */
const planLine = (prng: Prng, id: number, huge: number | undefined): Planned => {
  const text = (s: string, expected: LineClass): Planned => ({ bytes: Buffer.from(`${s}\n`), expected })
  if (huge !== undefined) {
    return text(JSON.stringify({ jsonrpc: "2.0", method: "submit", id, params: ["x".repeat(huge)] }), "tooLong")
  }
  switch (prng.int(0, 11)) {
    case 0:
    case 1:
    case 2:
      return text(request(prng, id), "valid")
    case 3:
      return { bytes: Buffer.from(`${request(prng, id)}\r\n`), expected: "valid" }
    case 4: {
      const valid = request(prng, id)
      return text(valid.slice(0, prng.int(1, valid.length - 1)), "malformed")
    }
    case 5:
      return text(
        prng.pick([
          "[1,2,3]",
          "42",
          "\"status\"",
          "null",
          "{\"jsonrpc\":\"1.0\",\"method\":\"status\"}",
          "{\"jsonrpc\":\"2.0\"}",
          "{\"jsonrpc\":\"2.0\",\"method\":5}",
          "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":7}",
          "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":{}}"
        ]),
        "malformed"
      )
    case 6: {
      // Raw bytes (no newline), starting with one that is never valid UTF-8.
      const bytes = prng.bytes(prng.int(1, 300)).map((b) => (b === 0x0a ? 0x20 : b))
      bytes[0] = 0xff
      return { bytes: Buffer.concat([bytes, Buffer.from("\n")]), expected: "malformed" }
    }
    case 7: {
      const depth = prng.int(100, 5_000)
      return text("[".repeat(depth) + "]".repeat(depth), "malformed")
    }
    case 8:
      // A raw NUL inside a JSON string is not JSON.
      return text("{\"jsonrpc\":\"2.0\",\"method\":\"a\u0000b\"}", "malformed")
    case 9:
      return text(prng.pick(["", "   ", "\t"]), "empty")
    case 10:
      return { bytes: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d, 0x0a]), expected: "malformed" } // {"\xc3("}: bad UTF-8
    default:
      return text(`{"jsonrpc":"2.0","method":"echo","id":${id},"params":["\\u0000","\u00e9\u4e2d"]}`, "valid")
  }
}

const jsonLines = (size: Scenario.Size) =>
  Effect.scoped(Effect.gen(function*() {
    const n = sizes[size]
    const prng = new Prng(0x150)
    const checks = new Checks()
    const { loop } = yield* Runtime.make({ loop: { signals: [] } })
    const fifo = yield* Fifo.make
    const reader = yield* Fifo.own(() => fifo.open("read"))
    const writer = yield* Fifo.own(() => fifo.open("write"))
    const hugeAt = new Set(Array.from({ length: n.hugeLines }, () => prng.int(0, n.lines - 1)))
    const plan = Array.from({ length: n.lines }, (_, i) => planLine(prng, i, hugeAt.has(i) ? n.hugeSize : undefined))
    // The last line has no newline: it must still count, at end of input.
    const last = Buffer.from(request(prng, n.lines))
    plan.push({ bytes: last, expected: "valid" })
    const stream = Buffer.concat(plan.map((p) => p.bytes))
    const expected: Record<LineClass, number> = { valid: 0, malformed: 0, empty: 0, tooLong: 0 }
    for (const p of plan) expected[p.expected]++
    const got: Record<LineClass, number> = { valid: 0, malformed: 0, empty: 0, tooLong: 0 }
    const order: Array<LineClass> = []
    let bytesRead = 0
    let spurious = 0
    let ended = false
    const splitter = new LineSplitter(65_536, (line) => {
      const kind = line === "tooLong" ? "tooLong" : classify(line)
      got[kind]++
      order.push(kind)
    })
    yield* loop.watchFd(reader.fd, { read: true }, {
      explanation: "fuzz: JSON-RPC lines from a FIFO",
      handle: (event) =>
        Effect.sync(() => {
          let any = false
          for (;;) {
            const chunk = Fifo.readAvailable(reader.fd)
            if (chunk === "eof") {
              splitter.end()
              ended = true
              return
            }
            if (chunk.length === 0) break
            any = true
            bytesRead += chunk.length
            splitter.feed(chunk)
          }
          if (!any && !event.hup) spurious++
        })
    })
    let offset = 0
    let writerWaits = 0
    while (offset < stream.length) {
      const length = Math.min(stream.length - offset, prng.int(1, 16_384))
      let written = 0
      try {
        written = Fifo.writeSome(writer.fd, stream, offset, length)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error
      }
      offset += written
      if (written < length) {
        writerWaits++
        const before = bytesRead
        checks.that(yield* waitFor(() => bytesRead > before, "10 seconds"), "the reader stopped reading the FIFO")
      }
    }
    writer.close()
    checks.that(yield* waitFor(() => ended, "30 seconds"), "the reader never saw the end of the FIFO")
    checks.equal("bytes read", bytesRead, stream.length)
    for (const kind of ["valid", "malformed", "empty", "tooLong"] as const) {
      checks.equal(`${kind} lines`, got[kind], expected[kind])
    }
    checks.that(order.every((kind, i) => kind === plan[i]?.expected), "lines were classified out of order")
    const stats = yield* loop.stats
    checks.equal("loop state after the fuzz", stats.state, "running")
    return {
      sent: plan.length,
      arrived: order.length,
      lost: Math.max(0, plan.length - order.length),
      checks,
      figures: {
        linesSent: plan.length,
        bytesSent: stream.length,
        linesValid: got.valid,
        linesMalformed: got.malformed,
        linesEmpty: got.empty,
        linesTooLong: got.tooLong,
        fdReadyEvents: stats.events.FdReady,
        readinessWithNothingToRead: spurious,
        writerWaitsForReader: writerWaits
      }
    }
  }))

/**
 * The scenario.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "random command bytes of every value and bursts longer than the self-pipe all arrive in order, unknown ones counted, pipe-full refused with a typed error; malformed JSON-RPC lines through a FIFO are each counted; the loop never dies",
  body: (size) =>
    Effect.gen(function*() {
      const bytes = yield* commandBytes(size)
      const lines = yield* jsonLines(size)
      return {
        sent: bytes.sent + lines.sent,
        arrived: bytes.arrived + lines.arrived,
        lost: bytes.lost + lines.lost,
        violations: [...bytes.checks.list, ...lines.checks.list],
        figures: { ...bytes.figures, ...lines.figures }
      }
    })
})
