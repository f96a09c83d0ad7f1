/**
 * What the daemon prints, and how: the Schemas of its JSON lines and of the
 * results of its JSON-RPC methods, their human renderings, and the writer
 * that puts them on a terminal (a live status line), a pipe or a file
 * (plain lines), or stdout as JSON lines (`--json`). Logs go to stderr.
 *
 * @since 0.1.0
 */
import { AgendaStats, EventLoop, Timeouts, WorkerState } from "@refpersys/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import * as Schema from "effect/Schema"
import { ControlStats } from "./Control.js"
import { RateLimit, type Summary } from "./internal/rateLimit.js"
import { processStreams } from "./internal/streams.js"
import { Mix, WorkloadStats } from "./Workload.js"

// ---- Schemas ---------------------------------------------------------------

/**
 * The platform layers the daemon can run on.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PlatformName = Schema.Literals(["linux-native", "node-portable"])

const PerPriority = Schema.Struct({ High: Schema.Number, Normal: Schema.Number, Low: Schema.Number })

/**
 * `{"event":"ready",...}`: the daemon is up and its FIFOs are open.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Ready = Schema.Struct({
  event: Schema.Literal("ready"),
  pid: Schema.Int,
  platform: PlatformName,
  /** Why this platform was chosen. */
  platformReason: Schema.String,
  /** The command FIFO. */
  cmd: Schema.String,
  /** The reply FIFO. */
  out: Schema.String,
  runtimeDir: Schema.String,
  workers: Schema.Int,
  rate: Schema.Number,
  mix: Mix,
  /** Seconds until the daemon quits by itself, or `null` to run until told. */
  duration: Schema.NullOr(Schema.Number)
})

/**
 * `{"event":"status",...}`: the periodic status; rates are over the last interval.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Status = Schema.Struct({
  event: Schema.Literal("status"),
  uptimeMs: Schema.Number,
  state: Schema.Literals(["running", "quitting", "stopped"]),
  /** Events dispatched by the loop per second. */
  eventsPerSec: Schema.Number,
  /** Tasklets finished (completed or failed) per second, per priority and in total. */
  taskletsPerSec: Schema.Struct({
    High: Schema.Number,
    Normal: Schema.Number,
    Low: Schema.Number,
    total: Schema.Number
  }),
  queued: PerPriority,
  running: Schema.Number,
  /** Workers per state. */
  workers: Schema.Struct({ Idle: Schema.Number, Run: Schema.Number, GC: Schema.Number }),
  submitted: Schema.Number,
  /** Tasklets that ended, in any outcome. */
  ended: Schema.Number,
  /** Workload submissions refused by a full queue. */
  refused: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type Status = typeof Status.Type

/**
 * `{"event":"dump",...}`: everything about the runtime (`D`, `SIGUSR1`, the
 * `dump` method).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Dump = Schema.Struct({
  event: Schema.Literal("dump"),
  /** What asked for it: `"command D"`, `"SIGUSR1"`, `"rpc"`. */
  cause: Schema.String,
  pid: Schema.Int,
  uptimeMs: Schema.Number,
  platform: Schema.Struct({ name: Schema.String, maxFds: Schema.Number, realtimeSignals: Schema.Boolean }),
  /** Signals received, per name. */
  signals: Schema.Record(Schema.String, Schema.Number),
  /** Command bytes no binding knew (from the FIFO or the self-pipe). */
  unknownCommands: Schema.Number,
  workers: Schema.Array(WorkerState.WorkerState),
  /** Every handler with its explanation, calls and failures. */
  handlers: Schema.Array(EventLoop.HandlerInfo),
  agenda: AgendaStats.AgendaStats,
  loop: EventLoop.LoopStats,
  timeouts: Schema.Array(Timeouts.TimeoutInfo),
  control: ControlStats,
  workload: WorkloadStats
})

/**
 * @since 0.1.0
 * @category models
 */
export type Dump = typeof Dump.Type

/**
 * `{"event":"stopping",...}`: a quit (drain) or exit (interrupt) began.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Stopping = Schema.Struct({
  event: Schema.Literal("stopping"),
  reason: Schema.Literals(["quit", "exit"]),
  cause: Schema.String
})

/**
 * What the daemon's own output did. Log lines and dumps can be triggered
 * once per input byte, so each has a per-second budget (see {@link Limits}):
 * what goes past it is counted here and summed up in one log line per
 * second instead of being written. `stdoutLost` and `stderrLost` say that
 * the stream failed (its reader went away: EPIPE) and is no longer written.
 *
 * @since 0.1.0
 * @category schemas
 */
export const OutputStats = Schema.Struct({
  /** Log lines given to stderr, summaries included (not written once stderr is lost). */
  logLines: Schema.Number,
  /** Log lines over the budget, counted and not written. */
  logLinesSuppressed: Schema.Number,
  /** Dumps printed on stdout. */
  dumps: Schema.Number,
  /** Dumps over the budget, counted and not printed (an RPC `dump` still gets its reply). */
  dumpsSuppressed: Schema.Number,
  stdoutLost: Schema.Boolean,
  stderrLost: Schema.Boolean
})

/**
 * @since 0.1.0
 * @category models
 */
export type OutputStats = typeof OutputStats.Type

/**
 * The final counts. `submitted = completed + failed + interrupted + dropped
 * + obsolete` once stopped (`queued` and `running` are then 0); `balanced`
 * says whether the agenda's invariant held.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FinalStats = Schema.Struct({
  submitted: Schema.Number,
  completed: Schema.Number,
  failed: Schema.Number,
  interrupted: Schema.Number,
  dropped: Schema.Number,
  obsolete: Schema.Number,
  queued: Schema.Number,
  running: Schema.Number,
  balanced: Schema.Boolean,
  byPriority: Schema.Struct({
    High: AgendaStats.PriorityStats,
    Normal: AgendaStats.PriorityStats,
    Low: AgendaStats.PriorityStats
  }),
  /** Whether a quit ran out of time and fell back to exit. */
  timedOut: Schema.Boolean,
  /** Events the loop dispatched. */
  events: Schema.Number,
  signals: Schema.Record(Schema.String, Schema.Number),
  unknownCommands: Schema.Number,
  control: ControlStats,
  workload: WorkloadStats,
  output: OutputStats
})

/**
 * @since 0.1.0
 * @category models
 */
export type FinalStats = typeof FinalStats.Type

/**
 * `{"event":"stopped",...}`: the last line.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Stopped = Schema.Struct({
  event: Schema.Literal("stopped"),
  reason: Schema.Literals(["quit", "exit"]),
  /** What triggered it: `"SIGINT"`, `"command Q"`, `"duration"`... */
  cause: Schema.String,
  exitCode: Schema.Int,
  uptimeMs: Schema.Number,
  stats: FinalStats
})

/**
 * @since 0.1.0
 * @category models
 */
export type Stopped = typeof Stopped.Type

/**
 * `{"event":"reopened",...}`: `SIGHUP` reopened the FIFOs; `recreated` lists
 * those that had been removed and were made again.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Reopened = Schema.Struct({
  event: Schema.Literal("reopened"),
  cmd: Schema.String,
  out: Schema.String,
  recreated: Schema.Array(Schema.String)
})

/**
 * `{"event":"stale",...}`: leftovers of a crashed run were removed at start.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Stale = Schema.Struct({
  event: Schema.Literal("stale"),
  /** The crashed run's pid, when its pid file held one. */
  pid: Schema.NullOr(Schema.Int),
  removed: Schema.Array(Schema.String)
})

/**
 * Any line the daemon prints with `--json`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Output } from "@refpersys/daemon"
 *
 * const line = Schema.decodeUnknownSync(Output.Line)(JSON.parse('{"event":"stopping","reason":"quit","cause":"SIGINT"}'))
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const Line = Schema.Union([Ready, Status, Dump, Stopping, Stopped, Reopened, Stale])

/**
 * @since 0.1.0
 * @category models
 */
export type Line = typeof Line.Type

/**
 * The result of the `stats` method.
 *
 * @since 0.1.0
 * @category schemas
 */
export const StatsResult = Schema.Struct({
  pid: Schema.Int,
  platform: PlatformName,
  runtimeDir: Schema.String,
  /** The latest status (rates over the last status interval). */
  status: Status,
  total: AgendaStats.PriorityStats,
  unknownCommands: Schema.Number,
  signals: Schema.Record(Schema.String, Schema.Number),
  control: ControlStats,
  workload: WorkloadStats,
  output: OutputStats
})

/**
 * @since 0.1.0
 * @category models
 */
export type StatsResult = typeof StatsResult.Type

/**
 * The result of the `gc` method.
 *
 * @since 0.1.0
 * @category schemas
 */
export const GcResult = Schema.Struct({
  /** From the request to every worker resuming. */
  durationMs: Schema.Number,
  /** Completed barriers so far. */
  gcCycles: Schema.Number,
  /** Whether `global.gc` ran (node `--expose-gc`). */
  collected: Schema.Boolean
})

/**
 * The result of the `quit` and `exit` methods (sent before the daemon stops).
 *
 * @since 0.1.0
 * @category schemas
 */
export const StopResult = Schema.Struct({
  pid: Schema.Int,
  stopping: Schema.Literals(["quit", "exit"])
})

/**
 * The params of the `submit` method: `count` tasklets at `priority`, each
 * busy for `spinMicros` then asleep for `sleepMs` (a sleeping tasklet holds
 * its worker without blocking the loop).
 *
 * @since 0.1.0
 * @category schemas
 */
export const SubmitParams = Schema.Struct({
  priority: Schema.Literals(["High", "Normal", "Low"]).pipe(Schema.withDecodingDefaultKey(Effect.succeed("Normal" as const))),
  count: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 })).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(1))
  ),
  label: Schema.String.check(Schema.isMinLength(1)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed("submitted by rpc"))
  ),
  spinMicros: Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 100_000 })).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(0))
  ),
  sleepMs: Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 3_600_000 })).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(0))
  )
})

/**
 * The result of the `submit` method.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SubmitResult = Schema.Struct({
  submitted: Schema.Int,
  /** Tasklet ids, in submission order. */
  ids: Schema.Array(Schema.Int)
})

// ---- Status sampling ---------------------------------------------------------

/**
 * Counters at one instant, from which {@link status} computes rates.
 *
 * @since 0.1.0
 * @category status
 */
export interface Sample {
  /** Milliseconds, on any monotonic clock. */
  readonly at: number
  /** Tasklets finished (completed or failed) so far, per priority. */
  readonly finished: { readonly High: number; readonly Normal: number; readonly Low: number }
  /** Events dispatched so far. */
  readonly events: number
}

/**
 * Takes a {@link Sample} from an agenda and a loop snapshot.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EventLoop, Agenda } from "@refpersys/core"
 * import { Output } from "@refpersys/daemon"
 *
 * const now = Effect.gen(function*() {
 *   const loop = yield* EventLoop.EventLoop
 *   return Output.sample(performance.now(), yield* Agenda.stats, yield* loop.stats)
 * })
 * ```
 *
 * @since 0.1.0
 * @category status
 */
export const sample = (at: number, agenda: AgendaStats.AgendaStats, loop: EventLoop.LoopStats): Sample => {
  const finished = (s: AgendaStats.PriorityStats) => s.completed + s.failed
  const p = agenda.byPriority
  const e = loop.events
  return {
    at,
    finished: { High: finished(p.High), Normal: finished(p.Normal), Low: finished(p.Low) },
    events: e.FdReady + e.Signal + e.TimerFired + e.Command + e.ChildExit
  }
}

/**
 * Builds the status: rates between `previous` and `current` (zero without
 * a previous sample or elapsed time), queue depths and worker states from
 * the agenda snapshot.
 *
 * @example
 * ```ts
 * import { Output } from "@refpersys/daemon"
 *
 * declare const previous: Output.Sample
 * declare const current: Output.Sample
 * declare const agenda: import("@refpersys/core").AgendaStats.AgendaStats
 * const status = Output.status({ previous, current, agenda, uptimeMs: 1500, refused: 0 })
 * ```
 *
 * @since 0.1.0
 * @category status
 */
export const status = (input: {
  readonly previous: Sample | undefined
  readonly current: Sample
  readonly agenda: AgendaStats.AgendaStats
  readonly uptimeMs: number
  readonly refused: number
}): Status => {
  const { agenda, current, previous } = input
  const seconds = previous === undefined ? 0 : (current.at - previous.at) / 1000
  // One decimal is all a reader can use, and keeps the JSON lines short.
  const rate = (now: number, before: number | undefined) =>
    seconds > 0 && before !== undefined ? Math.round((Math.max(0, now - before) / seconds) * 10) / 10 : 0
  const High = rate(current.finished.High, previous?.finished.High)
  const Normal = rate(current.finished.Normal, previous?.finished.Normal)
  const Low = rate(current.finished.Low, previous?.finished.Low)
  const workers = { Idle: 0, Run: 0, GC: 0 }
  for (const w of agenda.workers) workers[w.state]++
  const p = agenda.byPriority
  return {
    event: "status",
    uptimeMs: input.uptimeMs,
    state: agenda.state,
    eventsPerSec: rate(current.events, previous?.events),
    taskletsPerSec: { High, Normal, Low, total: Math.round((High + Normal + Low) * 10) / 10 },
    queued: { High: p.High.queued, Normal: p.Normal.queued, Low: p.Low.queued },
    running: agenda.total.running,
    workers,
    submitted: agenda.total.submitted,
    ended: agenda.total.ended,
    refused: input.refused
  }
}

// ---- Human renderings --------------------------------------------------------

const fixed = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : "-"
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

/**
 * The status as one line of text.
 *
 * @example
 * ```ts
 * import { Output } from "@refpersys/daemon"
 *
 * declare const status: Output.Status
 * console.log(Output.renderStatus(status))
 * // 12.5s  events/s 104  tasklets/s H 201 N 598 L 1203 = 2002  queued H 0 N 0 L 2  workers run 1 idle 3 gc 0
 * ```
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderStatus = (s: Status): string => {
  const t = s.taskletsPerSec
  return `${seconds(s.uptimeMs)}${s.state === "running" ? "" : ` (${s.state})`}  events/s ${fixed(s.eventsPerSec)}  ` +
    `tasklets/s H ${fixed(t.High)} N ${fixed(t.Normal)} L ${fixed(t.Low)} = ${fixed(t.total)}  ` +
    `queued H ${s.queued.High} N ${s.queued.Normal} L ${s.queued.Low}  ` +
    `workers run ${s.workers.Run} idle ${s.workers.Idle} gc ${s.workers.GC}` +
    (s.refused > 0 ? `  refused ${s.refused}` : "")
}

const pad = (text: string, width: number) => text.length >= width ? text : text + " ".repeat(width - text.length)
const padLeft = (text: string, width: number) => text.length >= width ? text : " ".repeat(width - text.length) + text

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): Array<string> => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? pad(c, widths[i]) : padLeft(c, widths[i]))).join("  ")
  return [line(header), ...rows.map(line)]
}

interface Row {
  readonly submitted: number
  readonly completed: number
  readonly failed: number
  readonly interrupted: number
  readonly dropped: number
  readonly obsolete: number
  readonly queued: number
  readonly waitTime?: { readonly mean: number }
  readonly runTime?: { readonly mean: number }
}

const counts = (byPriority: { readonly [K in "High" | "Normal" | "Low"]: Row }, total: Row) =>
  table(
    ["priority", "submitted", "completed", "failed", "interrupted", "dropped", "obsolete", "queued", "mean wait ms", "mean run ms"],
    [
      ["High", byPriority.High] as const,
      ["Normal", byPriority.Normal] as const,
      ["Low", byPriority.Low] as const,
      ["total", total] as const
    ].map(([name, s]) => [
      name,
      String(s.submitted),
      String(s.completed),
      String(s.failed),
      String(s.interrupted),
      String(s.dropped),
      String(s.obsolete),
      String(s.queued),
      s.waitTime === undefined ? "" : fixed(s.waitTime.mean, 3),
      s.runTime === undefined ? "" : fixed(s.runTime.mean, 3)
    ])
  )

const signalText = (signals: Readonly<Record<string, number>>) => {
  const entries = Object.entries(signals)
  return entries.length === 0 ? "none" : entries.map(([name, n]) => `${name} ${n}`).join(", ")
}

const outputText = (o: OutputStats): string => {
  const lost = [o.stdoutLost ? "stdout" : undefined, o.stderrLost ? "stderr" : undefined].filter((x) => x !== undefined)
  return `log lines ${o.logLines} (${o.logLinesSuppressed} over the budget), dumps ${o.dumps} (${o.dumpsSuppressed} over the budget)` +
    (lost.length === 0 ? "" : `; lost: ${lost.join(", ")}`)
}

/**
 * A dump as lines of text.
 *
 * @example
 * ```ts
 * import { Output } from "@refpersys/daemon"
 *
 * declare const dump: Output.Dump
 * for (const line of Output.renderDump(dump)) console.log(line)
 * ```
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderDump = (d: Dump): Array<string> => [
  `dump (${d.cause}) of pid ${d.pid} after ${seconds(d.uptimeMs)} on ${d.platform.name}`,
  `  loop: ${d.loop.state}, ${d.loop.iterations} iterations, events ${
    Object.entries(d.loop.events).map(([k, v]) => `${k} ${v}`).join(", ")
  }; dispatch latency mean ${fixed(d.loop.dispatchLatency.mean, 3)} ms, max ${fixed(d.loop.dispatchLatency.max, 3)} ms`,
  `  signals: ${signalText(d.signals)}; unknown commands: ${d.unknownCommands}`,
  `  control: ${d.control.requests} requests (${d.control.errors} errors), ${d.control.commandBytes} command bytes, ${d.control.replies} replies (${d.control.repliesDropped} dropped), ${d.control.reopens} reopens`,
  `  workload: ${d.workload.rate}/s, submitted H ${d.workload.submitted.High} N ${d.workload.submitted.Normal} L ${d.workload.submitted.Low}, refused ${d.workload.refused}`,
  `  agenda "${d.agenda.name}" ${d.agenda.state}, ${d.agenda.gcCycles} GC cycles, ${d.agenda.agingPicks} aging picks:`,
  ...counts(d.agenda.byPriority, d.agenda.total).map((l) => `    ${l}`),
  `  workers:`,
  ...d.workers.map((w) =>
    `    #${w.id} ${pad(w.state, 4)} started ${w.started} completed ${w.completed} failed ${w.failed} interrupted ${w.interrupted}` +
    (w.current === undefined ? "" : `  running #${w.current.id} "${w.current.label}" (${w.current.priority})`)
  ),
  `  handlers:`,
  ...d.handlers.map((h) =>
    `    ${pad(`#${h.id}`, 4)} ${pad(h.match, 22)} ${pad(h.run, 6)} calls ${h.calls} failures ${h.failures}  ${h.explanation}`
  ),
  `  timeouts:`,
  ...d.timeouts.map((t) =>
    `    ${pad(`#${t.id}`, 4)} ${t.label}${t.interval === undefined ? "" : ` every ${t.interval} ms`}, fired ${t.fired}, missed ${t.missed}`
  )
]

/**
 * The final report as lines of text.
 *
 * @example
 * ```ts
 * import { Output } from "@refpersys/daemon"
 *
 * declare const stopped: Output.Stopped
 * for (const line of Output.renderStopped(stopped)) console.log(line)
 * ```
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderStopped = (s: Stopped): Array<string> => {
  const f = s.stats
  return [
    `stopped by ${s.reason} (${s.cause}) after ${seconds(s.uptimeMs)}${f.timedOut ? ", the drain timed out" : ""}; exit code ${s.exitCode}`,
    ...counts(f.byPriority, f).map((l) => `  ${l}`),
    `  accounting: submitted ${f.submitted} = completed ${f.completed} + failed ${f.failed} + interrupted ${f.interrupted} + dropped ${f.dropped} + obsolete ${f.obsolete}: ${
      f.balanced ? "balanced" : "NOT BALANCED"
    }`,
    `  events ${f.events}, signals: ${signalText(f.signals)}, unknown commands ${f.unknownCommands}, control requests ${f.control.requests}, refused submissions ${f.workload.refused}`,
    `  replies ${f.control.replies} (${f.control.repliesDropped} dropped unwritten), ${outputText(f.output)}`
  ]
}

/**
 * The `stats` result as lines of text.
 *
 * @example
 * ```ts
 * import { Output } from "@refpersys/daemon"
 *
 * declare const stats: Output.StatsResult
 * for (const line of Output.renderStats(stats)) console.log(line)
 * ```
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderStats = (r: StatsResult): Array<string> => [
  `daemon pid ${r.pid} on ${r.platform}, runtime dir ${r.runtimeDir}`,
  `  ${renderStatus(r.status)}`,
  `  total: submitted ${r.total.submitted}, completed ${r.total.completed}, failed ${r.total.failed}, interrupted ${r.total.interrupted}, dropped ${r.total.dropped}, obsolete ${r.total.obsolete}, queued ${r.total.queued}, running ${r.total.running}`,
  `  signals: ${signalText(r.signals)}; unknown commands ${r.unknownCommands}; control requests ${r.control.requests} (${r.control.errors} errors)`
]

// ---- The writer --------------------------------------------------------------

/**
 * Where output goes: a terminal (live status line), plain text lines, or
 * JSON lines.
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = "tty" | "plain" | "json"

/**
 * The streams a writer uses; `columns` is the terminal width, if known;
 * `lost` says which streams failed and are no longer written (see
 * {@link OutputStats}). `out` and `err` must not throw.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sink {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  readonly columns?: () => number | undefined
  readonly lost?: () => { readonly stdout: boolean; readonly stderr: boolean }
}

/**
 * The per-second budgets of a writer, and its clock (milliseconds, any
 * monotonic origin; `performance.now` by default).
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  /** Log lines written per second at most, besides one summary of the rest (default 50). */
  readonly logsPerSecond?: number
  /** Dumps printed per second at most (default 10). */
  readonly dumpsPerSecond?: number
  readonly now?: () => number
}

/**
 * The default budgets: 50 log lines and 10 dumps per second.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultLimits = { logsPerSecond: 50, dumpsPerSecond: 10 } as const

/**
 * The daemon's output.
 *
 * @since 0.1.0
 * @category models
 */
export interface Output {
  readonly mode: Mode
  /**
   * Prints a line: JSON with `--json`, its human rendering otherwise. A
   * `dump` over its budget is counted, not printed. When stdout is lost,
   * the `stopped` line goes to stderr instead, so the final report survives.
   */
  readonly emit: (line: Line) => void
  /** Text for humans (ignored with `--json`). */
  readonly note: (text: string) => void
  /**
   * A log line on stderr, kept clear of the status line; over its budget,
   * counted instead. Given a function, it is called only when the line is
   * written, so a flood costs no formatting.
   */
  readonly log: (text: string | (() => string)) => void
  /**
   * Writes the summary of what the budgets held back in a second that is
   * over, if anything was (at most once a second, however often called).
   */
  readonly flush: () => void
  /** Ends the live status line, if one is shown, and writes the summary of anything held back. */
  readonly end: () => void
  readonly stats: () => OutputStats
}

const CLEAR = "\r\x1b[2K"

const processSink = (): Sink => {
  // A reader that went away (`| head`) must not take the daemon down with
  // an EPIPE: that stream stops, the daemon goes on until told to stop.
  const { stderr, stdout } = processStreams()
  return {
    out: stdout.write,
    err: stderr.write,
    columns: () => process.stdout.columns,
    lost: () => ({ stdout: stdout.lost(), stderr: stderr.lost() })
  }
}

/**
 * A writer for `mode`; by default on `process.stdout` and `process.stderr`
 * (each with an `error` listener: a stream whose reader went away is marked
 * lost and skipped, never fatal).
 *
 * @example
 * ```ts
 * import { Output } from "@refpersys/daemon"
 *
 * const output = Output.make("json")
 * output.emit({ event: "stopping", reason: "quit", cause: "SIGINT" })
 * // {"event":"stopping","reason":"quit","cause":"SIGINT"}
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (mode: Mode, sink?: Sink, limits: Limits = {}): Output => {
  const target: Sink = sink ?? processSink()
  const encode = Schema.encodeSync(Line)
  const now = limits.now ?? (() => performance.now())
  const logBudget = new RateLimit(limits.logsPerSecond ?? defaultLimits.logsPerSecond, now)
  const dumpBudget = new RateLimit(limits.dumpsPerSecond ?? defaultLimits.dumpsPerSecond, now)
  let logLines = 0
  let statusShown: string | undefined = undefined
  // A status line wider than the terminal would wrap, and `\r` could no
  // longer redraw it.
  const fit = (text: string) => {
    const columns = target.columns?.()
    return columns !== undefined && columns > 1 && text.length >= columns ? text.slice(0, columns - 1) : text
  }
  const above = (write: () => void) => {
    if (statusShown !== undefined) target.out(CLEAR)
    write()
    if (statusShown !== undefined) target.out(statusShown)
  }
  const lines = (texts: ReadonlyArray<string>) => above(() => target.out(texts.map((t) => t + "\n").join("")))
  const writeLog = (text: string) => {
    logLines++
    above(() => target.err(text.endsWith("\n") ? text : text + "\n"))
  }
  // The summaries are log lines of their own, in the mode's log format.
  const warn = (message: string) => {
    const time = new Date().toISOString()
    writeLog(mode === "json" ? JSON.stringify({ time, level: "WARN", message }) : `${time} WARN ${message}`)
  }
  const summarise = (what: string, summary: Summary | undefined) => {
    if (summary === undefined) return
    warn(
      `output: ${summary.suppressed} ${what} not written in the last second (at most ${summary.perSecond} per second; ` +
        `${summary.total} so far, counted in output stats)`
    )
  }
  const log = (text: string | (() => string)) => {
    const { admit, summary } = logBudget.admit()
    summarise("log line(s)", summary)
    if (admit) writeLog(typeof text === "string" ? text : text())
  }
  const flush = (force: boolean) => {
    summarise("log line(s)", logBudget.takeSummary(force))
    summarise("dump(s)", dumpBudget.takeSummary(force))
  }
  const lost = () => target.lost?.() ?? { stdout: false, stderr: false }
  const human = (line: Line): Array<string> | undefined => {
    switch (line.event) {
      case "ready":
        return [
          `rps-daemon ${line.pid} on ${line.platform} (${line.platformReason})`,
          `  ${line.workers} workers, ${line.rate} tasklets/s (mix High:Normal:Low ${line.mix.High}:${line.mix.Normal}:${line.mix.Low})` +
          (line.duration === null ? "" : `, for ${line.duration}s`),
          `  control: echo D > ${line.cmd}   (D dump, G gc, Q quit, X exit; JSON-RPC replies in ${line.out})`,
          `           npm run ctl -- stats --runtime-dir ${line.runtimeDir}`,
          `  Ctrl-C quits (drains the agenda), a second Ctrl-C exits at once`
        ]
      case "status":
        return [renderStatus(line)]
      case "dump":
        return renderDump(line)
      case "stopping":
        return [
          line.reason === "quit"
            ? `${line.cause}: quitting, draining the agenda (Ctrl-C again to exit at once)...`
            : `${line.cause}: exiting, interrupting running tasklets and dropping queued ones...`
        ]
      case "stopped":
        return renderStopped(line)
      case "reopened":
        return [
          `reopened the control FIFOs${line.recreated.length === 0 ? "" : ` (recreated ${line.recreated.join(", ")})`}`
        ]
      case "stale":
        return [
          `removed the leftovers of a crashed run${line.pid === null ? "" : ` (pid ${line.pid})`}: ${line.removed.join(", ")}`
        ]
    }
  }
  const print = (line: Line) => {
    if (mode === "json") {
      target.out(JSON.stringify(encode(line)) + "\n")
      return
    }
    if (line.event === "status" && mode === "tty") {
      statusShown = CLEAR + fit(renderStatus(line))
      target.out(statusShown)
      return
    }
    const texts = human(line)
    if (texts !== undefined) lines(texts)
  }
  return {
    mode,
    emit: (line) => {
      if (line.event === "dump") {
        const { admit, summary } = dumpBudget.admit()
        summarise("dump(s)", summary)
        if (!admit) return
      }
      if (line.event === "stopped" && lost().stdout) {
        // The final report matters more than the stream it was meant for.
        writeLog(JSON.stringify(encode(line)))
        return
      }
      print(line)
    },
    note: (text) => {
      if (mode !== "json") lines([text])
    },
    log,
    flush: () => flush(false),
    end: () => {
      if (statusShown !== undefined) {
        statusShown = undefined
        target.out("\n")
      }
      flush(true)
    },
    stats: () => {
      const { stderr, stdout } = lost()
      return {
        logLines,
        logLinesSuppressed: logBudget.suppressed,
        dumps: dumpBudget.admitted,
        dumpsSuppressed: dumpBudget.suppressed,
        stdoutLost: stdout,
        stderrLost: stderr
      }
    }
  }
}

const describe = (value: unknown): string => {
  if (typeof value === "string") return value
  if (value instanceof Error) return value.message
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * A logger writing to the output's stderr: text lines on a terminal or
 * plain output, JSON objects with `--json`. Log messages that carry an
 * `EventLoop.Dump` are skipped, because the daemon prints its dumps itself.
 *
 * @example
 * ```ts
 * import { Effect, Logger } from "effect"
 * import { Output } from "@refpersys/daemon"
 *
 * const output = Output.make("plain")
 * const program = Effect.logWarning("disk almost full").pipe(
 *   Effect.provide(Logger.layer([Output.logger(output)]))
 * )
 * ```
 *
 * @since 0.1.0
 * @category logging
 */
export const logger = (output: Output): Logger.Logger<unknown, void> =>
  Logger.make(({ cause, date, fiber, logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    if (parts.some((part) => part instanceof EventLoop.Dump)) return
    // Formatted only if the log budget lets the line out.
    output.log(() => {
      const text = parts.map(describe).join(" ")
      const failure = cause.reasons.length === 0 ? undefined : Cause.pretty(cause)
      // Upper case, as the writer's own summaries and the documented format.
      const level = logLevel.toUpperCase()
      if (output.mode !== "json") {
        return `${date.toISOString()} ${level} ${text}${failure === undefined ? "" : `\n${failure}`}`
      }
      const annotations = fiber.getRef(References.CurrentLogAnnotations)
      const spans = fiber.getRef(References.CurrentLogSpans)
      return JSON.stringify({
        time: date.toISOString(),
        level,
        message: text,
        ...(failure === undefined ? {} : { cause: failure }),
        ...(spans.length === 0 ? {} : { spans: spans.map(([label]) => label) }),
        ...(Object.keys(annotations).length === 0 ? {} : { annotations: { ...annotations } })
      })
    })
  })
