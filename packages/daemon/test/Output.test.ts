import { it } from "@effect/vitest"
import { describe, expect } from "vitest"
import { Agenda, EventLoop } from "@refpersys/core"
import { TestPlatform } from "@refpersys/testkit"
import { Effect, Layer, Logger, Schema } from "effect"
import * as Output from "../src/Output.js"
import * as Workload from "../src/Workload.js"

const env = Layer.merge(TestPlatform.layer(), Agenda.layer({ workers: 2 }))

const capture = (columns?: number) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const sink: Output.Sink = {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
    ...(columns === undefined ? {} : { columns: () => columns })
  }
  return { out, err, sink }
}

const control = {
  bytesRead: 3,
  commandBytes: 2,
  commandBytesRefused: 0,
  requests: 1,
  errors: 1,
  overlong: 0,
  replies: 1,
  repliesDropped: 0,
  replyBytesWaiting: 0,
  discardedBytes: 0,
  reopens: 0
}

const outputStats: Output.OutputStats = {
  logLines: 2,
  logLinesSuppressed: 0,
  dumps: 1,
  dumpsSuppressed: 0,
  stdoutLost: false,
  stderrLost: false
}

const workload: Workload.WorkloadStats = {
  rate: 100,
  mix: Workload.defaultMix,
  submitted: { High: 1, Normal: 3, Low: 6 },
  refused: 0,
  ticks: 10,
  stopped: false
}

/** A dump line built from a real loop and agenda, as the daemon builds it. */
const realDump = Effect.gen(function*() {
  const loop = yield* EventLoop.make({ signals: ["SIGUSR1"] })
  yield* loop.register({ explanation: "say hello on SIGUSR1", match: { _tag: "Signal", signal: "SIGUSR1" }, handle: () => Effect.void })
  yield* loop.timeouts.every("1 second", Effect.void, { label: "tick" })
  yield* Agenda.run(Effect.void, { priority: "High", label: "one" })
  const d = yield* loop.dump
  const dump: Output.Dump = {
    event: "dump",
    cause: "test",
    pid: process.pid,
    uptimeMs: 12,
    platform: d.platform,
    signals: d.loop.signals,
    unknownCommands: d.loop.unknownCommands,
    workers: d.agenda.workers,
    handlers: d.handlers,
    agenda: d.agenda,
    loop: d.loop,
    timeouts: d.timeouts,
    control,
    workload
  }
  return { dump, loop, d }
})

/** A stopped line from a real dump's agenda counts. */
const stoppedOf = (d: EventLoop.Dump): Output.Stopped => {
  const t = d.agenda.total
  return {
    event: "stopped",
    reason: "quit",
    cause: "SIGINT",
    exitCode: 0,
    uptimeMs: 1000,
    stats: {
      submitted: t.submitted,
      completed: t.completed,
      failed: t.failed,
      interrupted: t.interrupted,
      dropped: t.dropped,
      obsolete: t.obsolete,
      queued: t.queued,
      running: t.running,
      balanced: t.balanced,
      byPriority: d.agenda.byPriority,
      timedOut: false,
      events: 3,
      signals: { SIGINT: 1 },
      unknownCommands: 2,
      control,
      workload,
      output: outputStats
    }
  }
}

describe("Output Schemas", () => {
  it.effect("a dump built from a real loop survives JSON and decodes as a Line", () =>
    Effect.gen(function*() {
      const { dump } = yield* realDump
      const json = JSON.parse(JSON.stringify(Schema.encodeSync(Output.Line)(dump)))
      expect(json.event).toBe("dump")
      expect(json.handlers.map((h: { explanation: string }) => h.explanation)).toContain("say hello on SIGUSR1")
      const decoded = Schema.decodeUnknownSync(Output.Line)(json)
      expect(decoded.event).toBe("dump")
      if (decoded.event === "dump") {
        expect(decoded.agenda.total.completed).toBe(1)
        expect(decoded.workers).toHaveLength(2)
        expect(decoded.timeouts.map((t) => t.label)).toEqual(["tick"])
      }
    }).pipe(Effect.provide(env)))

  it("each line kind decodes, and a wrong one does not", () => {
    const lines: Array<unknown> = [
      {
        event: "ready",
        pid: 1,
        platform: "linux-native",
        platformReason: "r",
        cmd: "/c",
        out: "/o",
        runtimeDir: "/",
        workers: 4,
        rate: 2000,
        mix: Workload.defaultMix,
        duration: null
      },
      { event: "stopping", reason: "exit", cause: "command X" },
      { event: "reopened", cmd: "/c", out: "/o", recreated: ["/c"] },
      { event: "stale", pid: null, removed: [] }
    ]
    for (const line of lines) expect(Schema.decodeUnknownSync(Output.Line)(line)).toEqual(line)
    expect(() => Schema.decodeUnknownSync(Output.Line)({ event: "ready", pid: 1, platform: "windows" })).toThrow()
    expect(() => Schema.decodeUnknownSync(Output.Line)({ event: "stopping", reason: "later", cause: "x" })).toThrow()
  })

  it("the RPC results decode", () => {
    expect(Schema.decodeUnknownSync(Output.GcResult)({ durationMs: 1.5, gcCycles: 2, collected: false }).gcCycles).toBe(2)
    expect(Schema.decodeUnknownSync(Output.StopResult)({ pid: 3, stopping: "quit" }).stopping).toBe("quit")
    expect(Schema.decodeUnknownSync(Output.SubmitResult)({ submitted: 2, ids: [7, 8] }).ids).toEqual([7, 8])
    expect(() => Schema.decodeUnknownSync(Output.StopResult)({ pid: 3, stopping: "later" })).toThrow()
  })

  it("submit params get defaults and bounds", () => {
    expect(Schema.decodeUnknownSync(Output.SubmitParams)({})).toEqual({
      priority: "Normal",
      count: 1,
      label: "submitted by rpc",
      spinMicros: 0,
      sleepMs: 0
    })
    expect(Schema.decodeUnknownSync(Output.SubmitParams)({ priority: "Low", count: 5, sleepMs: 10 }).count).toBe(5)
    for (const bad of [{ priority: "Urgent" }, { count: 0 }, { count: 1.5 }, { count: 5000 }, { sleepMs: -1 }, { label: "" }]) {
      expect(() => Schema.decodeUnknownSync(Output.SubmitParams)(bad), JSON.stringify(bad)).toThrow()
    }
  })
})

describe("Output.status", () => {
  it.effect("computes rates between samples and counts workers by state", () =>
    Effect.gen(function*() {
      const { d } = yield* realDump
      const previous: Output.Sample = { at: 1000, finished: { High: 0, Normal: 0, Low: 0 }, events: 0 }
      const current = Output.sample(1500, d.agenda, d.loop)
      expect(current.finished.High).toBe(1)
      const status = Output.status({ previous, current, agenda: d.agenda, uptimeMs: 1500, refused: 4 })
      expect(status.taskletsPerSec).toEqual({ High: 2, Normal: 0, Low: 0, total: 2 })
      expect(status.eventsPerSec).toBe(Math.round((current.events / 0.5) * 10) / 10)
      expect(status.workers.Idle + status.workers.Run + status.workers.GC).toBe(2)
      expect(status.refused).toBe(4)
      expect(status.submitted).toBe(1)
      expect(Schema.decodeUnknownSync(Output.Line)(status)).toEqual(status)
      const first = Output.status({ previous: undefined, current, agenda: d.agenda, uptimeMs: 10, refused: 0 })
      expect(first.taskletsPerSec.total).toBe(0)
      expect(first.eventsPerSec).toBe(0)
    }).pipe(Effect.provide(env)))
})

const status: Output.Status = {
  event: "status",
  uptimeMs: 2500,
  state: "running",
  eventsPerSec: 100,
  taskletsPerSec: { High: 200, Normal: 600, Low: 1200, total: 2000 },
  queued: { High: 0, Normal: 1, Low: 2 },
  running: 1,
  workers: { Idle: 3, Run: 1, GC: 0 },
  submitted: 5000,
  ended: 4997,
  refused: 0
}

describe("Output.make", () => {
  it("json mode prints one JSON object per line, status included, and no notes", () => {
    const { out, sink } = capture()
    const output = Output.make("json", sink)
    output.emit(status)
    output.emit({ event: "stopping", reason: "quit", cause: "SIGINT" })
    output.note("hello")
    output.end()
    expect(out.map((l) => JSON.parse(l))).toEqual([status, { event: "stopping", reason: "quit", cause: "SIGINT" }])
    expect(out.every((l) => l.endsWith("\n") && l.indexOf("\n") === l.length - 1)).toBe(true)
  })

  it("plain mode prints text lines, the status as one of them", () => {
    const { out, sink } = capture()
    const output = Output.make("plain", sink)
    output.emit(status)
    output.emit({ event: "stopping", reason: "quit", cause: "SIGINT" })
    expect(out.join("")).toBe(
      `${Output.renderStatus(status)}\nSIGINT: quitting, draining the agenda (Ctrl-C again to exit at once)...\n`
    )
  })

  it("tty mode redraws one status line, keeps other output above it, and fits the width", () => {
    const { err, out, sink } = capture(40)
    const output = Output.make("tty", sink)
    output.emit(status)
    const shown = "\r\x1b[2K" + Output.renderStatus(status).slice(0, 39)
    expect(out).toEqual([shown])
    output.log("a warning")
    output.emit({ event: "stopping", reason: "exit", cause: "command X" })
    expect(err).toEqual(["a warning\n"])
    expect(out.slice(1)).toEqual([
      "\r\x1b[2K",
      shown,
      "\r\x1b[2K",
      "command X: exiting, interrupting running tasklets and dropping queued ones...\n",
      shown
    ])
    output.end()
    expect(out[out.length - 1]).toBe("\n")
  })

  it("renders the status, stats and stopped reports for humans", () => {
    expect(Output.renderStatus(status)).toBe(
      "2.5s  events/s 100  tasklets/s H 200 N 600 L 1200 = 2000  queued H 0 N 1 L 2  workers run 1 idle 3 gc 0"
    )
  })
})

describe("Output renderings", () => {
  it.effect("a dump names the handlers with their explanations, the workers and the timeouts", () =>
    Effect.gen(function*() {
      const { dump } = yield* realDump
      const text = Output.renderDump(dump).join("\n")
      expect(text).toContain("dump (test)")
      expect(text).toContain("say hello on SIGUSR1")
      expect(text).toContain("default: D dumps the runtime state")
      expect(text).toContain("#1 Idle")
      expect(text).toContain("tick every 1000 ms")
      expect(text).toContain("unknown commands: 0")
    }).pipe(Effect.provide(env)))

  it.effect("the stopped report shows the accounting; stats show the status", () =>
    Effect.gen(function*() {
      const { d } = yield* realDump
      const t = d.agenda.total
      const stopped = stoppedOf(d)
      const text = Output.renderStopped(stopped).join("\n")
      expect(text).toContain("stopped by quit (SIGINT)")
      expect(text).toContain("accounting: submitted 1 = completed 1 + failed 0 + interrupted 0 + dropped 0 + obsolete 0: balanced")
      expect(text).toContain("signals: SIGINT 1, unknown commands 2")
      expect(text).toContain("replies 1 (0 dropped unwritten), log lines 2 (0 over the budget), dumps 1 (0 over the budget)")
      expect(Schema.decodeUnknownSync(Output.Line)(JSON.parse(JSON.stringify(Schema.encodeSync(Output.Line)(stopped)))))
        .toMatchObject({ event: "stopped", stats: { submitted: 1, balanced: true } })
      const stats: Output.StatsResult = {
        pid: 9,
        platform: "node-portable",
        runtimeDir: "/run/x",
        status,
        total: t,
        unknownCommands: 2,
        signals: {},
        control,
        workload,
        output: outputStats
      }
      const lines = Output.renderStats(stats)
      expect(lines[0]).toBe("daemon pid 9 on node-portable, runtime dir /run/x")
      expect(lines.join("\n")).toContain(Output.renderStatus(status))
    }).pipe(Effect.provide(env)))
})

describe("Output budgets and lost streams", () => {
  const clock = () => {
    let t = 0
    return { now: () => t, advance: (ms: number) => (t += ms) }
  }

  it("log lines over the budget are counted, not written, and summed up once the second is over", () => {
    const { err, sink } = capture()
    const time = clock()
    const output = Output.make("json", sink, { logsPerSecond: 3, now: time.now })
    for (let i = 0; i < 1000; i++) output.log(`line ${i}`)
    expect(err).toEqual(["line 0\n", "line 1\n", "line 2\n"])
    expect(output.stats()).toMatchObject({ logLines: 3, logLinesSuppressed: 997 })
    time.advance(1000)
    output.log("next second")
    expect(err).toHaveLength(5)
    const summary = JSON.parse(err[3])
    expect(summary).toMatchObject({ level: "WARN" })
    expect(summary.message).toBe(
      "output: 997 log line(s) not written in the last second (at most 3 per second; 997 so far, counted in output stats)"
    )
    expect(err[4]).toBe("next second\n")
    // Nothing held back since: nothing to sum up.
    output.flush()
    expect(err).toHaveLength(5)
    for (let i = 0; i < 5; i++) output.log("more")
    // Within the second, however often asked, no summary yet: at most one a second.
    for (let i = 0; i < 10; i++) output.flush()
    expect(err).toHaveLength(7)
    output.end()
    expect(err).toHaveLength(8)
    expect(err[7]).toContain("output: 3 log line(s) not written in the last second (at most 3 per second; 1000 so far")
    expect(output.stats()).toMatchObject({ logLines: 8, logLinesSuppressed: 1000 })
  })

  it("a plain-text summary is a plain log line", () => {
    const { err, sink } = capture()
    const time = clock()
    const output = Output.make("plain", sink, { logsPerSecond: 1, now: time.now })
    output.log("a")
    output.log("b")
    time.advance(1000)
    output.flush()
    expect(err[0]).toBe("a\n")
    expect(err[1]).toMatch(/^\S+ WARN output: 1 log line\(s\) not written in the last second \(at most 1 per second; 1 so far/)
  })

  it.effect("dumps over the budget are counted, not printed, and summed up in the log", () =>
    Effect.gen(function*() {
      const { dump } = yield* realDump
      const { err, out, sink } = capture()
      const time = clock()
      const output = Output.make("json", sink, { dumpsPerSecond: 2, now: time.now })
      for (let i = 0; i < 50; i++) output.emit(dump)
      expect(out).toHaveLength(2)
      expect(output.stats()).toMatchObject({ dumps: 2, dumpsSuppressed: 48 })
      time.advance(1000)
      output.emit(dump)
      expect(out).toHaveLength(3)
      expect(err).toHaveLength(1)
      expect(JSON.parse(err[0]).message).toContain("output: 48 dump(s) not written in the last second (at most 2 per second")
    }).pipe(Effect.provide(env)))

  it.effect("with stdout lost, the stopped line goes to stderr; the stats say which stream was lost", () =>
    Effect.gen(function*() {
      const { d } = yield* realDump
      const { err, out, sink } = capture()
      let lost = false
      const output = Output.make("plain", { ...sink, lost: () => ({ stdout: lost, stderr: false }) })
      expect(output.stats()).toMatchObject({ stdoutLost: false, stderrLost: false })
      lost = true
      output.emit(stoppedOf(d))
      expect(out).toEqual([])
      expect(Schema.decodeUnknownSync(Output.Line)(JSON.parse(err[0]))).toMatchObject({ event: "stopped", cause: "SIGINT" })
      expect(output.stats().stdoutLost).toBe(true)
    }).pipe(Effect.provide(env)))
})

describe("Output.logger", () => {
  it.effect("formats only the lines the log budget lets out", () =>
    Effect.gen(function*() {
      const { err, sink } = capture()
      const output = Output.make("json", sink, { logsPerSecond: 2, now: () => 0 })
      let formatted = 0
      const costly = {
        toJSON: () => {
          formatted++
          return "costly"
        }
      }
      const logger = Logger.layer([Output.logger(output)])
      for (let i = 0; i < 10; i++) yield* Effect.logWarning(costly).pipe(Effect.provide(logger))
      expect(err).toHaveLength(2)
      expect(formatted).toBe(2)
      expect(output.stats()).toMatchObject({ logLines: 2, logLinesSuppressed: 8 })
    }))

  it.effect("writes text to stderr, JSON with --json, and skips messages carrying a Dump", () =>
    Effect.gen(function*() {
      const plain = capture()
      yield* Effect.logWarning("careful").pipe(
        Effect.provide(Logger.layer([Output.logger(Output.make("plain", plain.sink))]))
      )
      expect(plain.err).toHaveLength(1)
      expect(plain.err[0]).toMatch(/WARN careful\n$/)
      const json = capture()
      const logger = Logger.layer([Output.logger(Output.make("json", json.sink))])
      yield* Effect.logInfo("hello", { n: 1 }).pipe(Effect.annotateLogs("where", "test"), Effect.provide(logger))
      const dump = EventLoop.Dump.make({
        at: 0,
        platform: { name: "test", maxFds: 1, realtimeSignals: false },
        loop: yield* Effect.scoped(Effect.flatMap(EventLoop.make(), (l) => l.stats)).pipe(Effect.provide(env)),
        handlers: [],
        timeouts: [],
        agenda: yield* Effect.scoped(Effect.flatMap(Agenda.make(), (a) => a.stats))
      })
      yield* Effect.logInfo("dump (command D)", dump).pipe(Effect.provide(logger))
      expect(json.err).toHaveLength(1)
      expect(JSON.parse(json.err[0])).toMatchObject({
        level: "INFO",
        message: 'hello {"n":1}',
        annotations: { where: "test" }
      })
      expect(json.out).toEqual([])
    }))
})
