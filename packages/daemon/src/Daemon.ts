/**
 * The demo daemon: the event loop on a real platform, an agenda of workers
 * serving a synthetic workload at three priorities, periodic timers, and the
 * FIFO control channel, until a signal or a command stops it.
 *
 * It builds on the loop's default bindings (`D` dump, `G` GC barrier, `Q` /
 * `SIGINT` / `SIGTERM` quit, `X` / a second `SIGINT` exit, `SIGUSR1` dump)
 * and adds its own handlers beside them: dumps and stop announcements are
 * printed on stdout, `SIGHUP` reopens the FIFOs, `SIGUSR2` prints a status
 * line at once.
 *
 * @since 0.1.0
 */
import {
  Agenda,
  AgendaError,
  type AgendaStats,
  EventLoop,
  type EventLoopError,
  Platform,
  PriorityScheduler
} from "@refpersys/core"
import { AutoPlatform, LinuxPlatform, NodePlatform } from "@refpersys/platform-linux"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Control from "./Control.js"
import * as JsonRpc from "./JsonRpc.js"
import * as Output from "./Output.js"
import * as RuntimeDir from "./RuntimeDir.js"
import * as Workload from "./Workload.js"

/**
 * Which platform layer to run on: `auto` picks the native one when its
 * addon loaded.
 *
 * @since 0.1.0
 * @category models
 */
export type PlatformChoice = "auto" | "native" | "portable"

/**
 * The daemon's configuration (what the command-line flags set).
 *
 * @since 0.1.0
 * @category models
 */
export interface Config {
  readonly workers: number
  /** Synthetic tasklets per second (0: no workload). */
  readonly rate: number
  readonly mix: Workload.Mix
  /** Seconds until the daemon quits by itself; `undefined` runs until told. */
  readonly duration: number | undefined
  readonly runtimeDir: string
  readonly platform: PlatformChoice
  /** Milliseconds between status lines. */
  readonly statusIntervalMs: number
  /** How long a quit may drain the agenda before it exits (default 10 s). */
  readonly quitTimeoutMs?: number
}

/**
 * Exit codes: 0 after a quit or an exit asked for (signal, command, duration),
 * 1 when the daemon could not start or failed, 2 for bad flags, 77 when it
 * refused an untrusted runtime directory or FIFO (`Untrusted`, the same value
 * as `RuntimeDir.untrustedExitCode`), 130 after a second `SIGINT`.
 *
 * @since 0.1.0
 * @category constants
 */
export const ExitCode = { Ok: 0, Failed: 1, Usage: 2, Untrusted: 77, Interrupted: 130 } as const

/**
 * Why the daemon could not start.
 *
 * @since 0.1.0
 * @category errors
 */
export type StartError =
  | RuntimeDir.RuntimeDirError
  | Control.ControlError
  | Control.WatchError
  | AgendaError.InvalidOptions
  | Platform.PlatformError

const platformFor = (choice: PlatformChoice): {
  readonly layer: Layer.Layer<Platform.Platform, Platform.PlatformError>
  readonly name: "linux-native" | "node-portable"
  readonly reason: string
} => {
  switch (choice) {
    case "auto":
      return { layer: AutoPlatform.layer, name: AutoPlatform.choice.name, reason: AutoPlatform.choice.reason }
    case "native":
      return { layer: LinuxPlatform.layer(), name: "linux-native", reason: "chosen with --platform native" }
    case "portable":
      return { layer: NodePlatform.layer(), name: "node-portable", reason: "chosen with --platform portable" }
  }
}

const Empty = Schema.Struct({})

const finalStats = (
  report: AgendaStats.ShutdownReport,
  loop: EventLoop.LoopStats,
  control: Control.ControlStats,
  workload: Workload.WorkloadStats,
  output: Output.OutputStats
): Output.FinalStats => {
  const t = report.stats.total
  const e = loop.events
  return {
    submitted: t.submitted,
    completed: t.completed,
    failed: t.failed,
    interrupted: t.interrupted,
    dropped: t.dropped,
    obsolete: t.obsolete,
    queued: t.queued,
    running: t.running,
    balanced: t.balanced,
    byPriority: report.stats.byPriority,
    timedOut: report.timedOut,
    events: e.FdReady + e.Signal + e.TimerFired + e.Command + e.ChildExit,
    signals: loop.signals,
    unknownCommands: loop.unknownCommands,
    control,
    workload,
    output
  }
}

/**
 * Runs the daemon until it stops, writing to `output`; succeeds with the
 * process exit code (see {@link ExitCode}). Fails only when it cannot start.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Daemon, Output, Workload } from "@refpersys/daemon"
 *
 * const code = Daemon.run({
 *   workers: 4,
 *   rate: 2000,
 *   mix: Workload.defaultMix,
 *   duration: 5,
 *   runtimeDir: "/tmp/rps-example",
 *   platform: "auto",
 *   statusIntervalMs: 1000
 * }, Output.make("json"))
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const run = (config: Config, output: Output.Output): Effect.Effect<number, StartError> =>
  Effect.scoped(Effect.gen(function*() {
    const started = performance.now()
    const uptimeMs = () => Math.round(performance.now() - started)
    const { files, stale } = yield* RuntimeDir.acquire(config.runtimeDir)
    if (stale !== undefined) output.emit({ event: "stale", pid: stale.pid, removed: stale.removed })

    const chosen = platformFor(config.platform)
    const platform = Context.get(yield* Layer.build(chosen.layer), Platform.Platform)
    const agenda = yield* Agenda.make({ name: "daemon", workers: config.workers, capacity: 10_000 })
    const loop = yield* EventLoop.make({
      quitTimeout: Duration.millis(config.quitTimeoutMs ?? 10_000)
    }).pipe(
      Effect.provideService(Platform.Platform, platform),
      Effect.provideService(Agenda.Agenda, agenda)
    )
    const workload = Workload.make(agenda, { rate: config.rate, mix: config.mix })
    const fibers = yield* FiberSet.make<void, never>()
    let control = undefined as Control.Control | undefined
    const controlStats = (): Control.ControlStats =>
      control?.stats() ?? {
        bytesRead: 0,
        commandBytes: 0,
        commandBytesRefused: 0,
        requests: 0,
        errors: 0,
        overlong: 0,
        replies: 0,
        repliesDropped: 0,
        replyBytesWaiting: 0,
        discardedBytes: 0,
        reopens: 0
      }

    // ---- status and dumps
    let previous = undefined as Output.Sample | undefined
    let latest = undefined as Output.Status | undefined
    const sampleStatus = Effect.gen(function*() {
      const stats = yield* agenda.stats
      const current = Output.sample(performance.now(), stats, yield* loop.stats)
      latest = Output.status({
        previous,
        current,
        agenda: stats,
        uptimeMs: uptimeMs(),
        refused: workload.stats().refused
      })
      previous = current
      return latest
    })
    // The status tick also writes the summary of what the output budgets held back.
    const printStatus = Effect.map(sampleStatus, (status) => {
      output.emit(status)
      output.flush()
    })

    const makeDump = (cause: string) =>
      Effect.map(loop.dump, (d): Output.Dump => ({
        event: "dump",
        cause,
        pid: process.pid,
        uptimeMs: uptimeMs(),
        platform: d.platform,
        signals: d.loop.signals,
        unknownCommands: d.loop.unknownCommands,
        workers: d.agenda.workers,
        handlers: d.handlers,
        agenda: d.agenda,
        loop: d.loop,
        timeouts: d.timeouts,
        control: controlStats(),
        workload: workload.stats()
      }))
    const printDump = (cause: string) => Effect.map(makeDump(cause), (dump) => output.emit(dump))

    // ---- stopping: the loop's defaults do it; the daemon says so
    let stopping = undefined as { readonly reason: "quit" | "exit"; readonly cause: string } | undefined
    const announce = (reason: "quit" | "exit", cause: string) =>
      Effect.sync(() => {
        if (stopping !== undefined && (stopping.reason === "exit" || reason === "quit")) return
        stopping = { reason, cause }
        output.emit({ event: "stopping", reason, cause })
      })

    // ---- JSON-RPC methods
    const serverError = (message: string, data?: unknown) =>
      new JsonRpc.RpcError({
        code: JsonRpc.ErrorCode.ServerError,
        message,
        ...(data === undefined ? {} : { data })
      })
    const methods: JsonRpc.Methods = {
      stats: JsonRpc.method({
        description: "counters, rates, queue depths and worker states",
        params: Empty,
        result: Output.StatsResult,
        handle: () =>
          Effect.gen(function*() {
            const status = latest ?? (yield* sampleStatus)
            const stats = yield* agenda.stats
            const loopStats = yield* loop.stats
            return {
              pid: process.pid,
              platform: chosen.name,
              runtimeDir: files.dir,
              status,
              total: stats.total,
              unknownCommands: loopStats.unknownCommands,
              signals: loopStats.signals,
              control: controlStats(),
              workload: workload.stats(),
              output: output.stats()
            }
          })
      }),
      dump: JsonRpc.method({
        description: "everything about the runtime (also printed on stdout)",
        params: Empty,
        result: Output.Dump,
        handle: () => Effect.tap(makeDump("rpc"), (dump) => Effect.sync(() => output.emit(dump)))
      }),
      gc: JsonRpc.method({
        description: "a garbage-collection barrier on the agenda; replies when every worker resumed",
        params: Empty,
        result: Output.GcResult,
        handle: () =>
          Effect.gen(function*() {
            const gc = (globalThis as { gc?: () => void }).gc
            const begin = performance.now()
            yield* agenda.requestGc(Effect.sync(() => gc?.())).pipe(
              Effect.mapError((error) => serverError(`no GC barrier: ${error.message}`))
            )
            const durationMs = performance.now() - begin
            const stats = yield* agenda.stats
            return { durationMs, gcCycles: stats.gcCycles, collected: gc !== undefined }
          })
      }),
      quit: JsonRpc.method({
        description: "quits: drains the agenda, then stops (as command Q)",
        params: Empty,
        result: Output.StopResult,
        handle: () => Effect.succeed({ pid: process.pid, stopping: "quit" as const }),
        afterReply: () => Effect.ignore(loop.send("Q"))
      }),
      exit: JsonRpc.method({
        description: "exits now: interrupts running tasklets, drops queued ones (as command X)",
        params: Empty,
        result: Output.StopResult,
        handle: () => Effect.succeed({ pid: process.pid, stopping: "exit" as const }),
        afterReply: () => Effect.ignore(loop.send("X"))
      }),
      submit: JsonRpc.method({
        description: "submits tasklets that spin and/or sleep",
        params: Output.SubmitParams,
        result: Output.SubmitResult,
        handle: (p) =>
          Effect.gen(function*() {
            const body = Effect.andThen(
              Effect.sync(() => {
                const end = performance.now() + p.spinMicros / 1000
                while (performance.now() < end) {
                  // busy, as asked
                }
              }),
              p.sleepMs > 0 ? Effect.sleep(Duration.millis(p.sleepMs)) : Effect.void
            )
            const ids: Array<number> = []
            for (let i = 0; i < p.count; i++) {
              const handle = yield* agenda.trySubmit(body, { priority: p.priority, label: p.label }).pipe(
                Effect.mapError((error) =>
                  serverError(
                    error._tag === "AgendaFull"
                      ? `the ${p.priority} queue is full after ${ids.length} of ${p.count} tasklets; retry later`
                      : `not submitted after ${ids.length} of ${p.count} tasklets: ${error.message}`,
                    { submitted: ids.length, ids }
                  )
                )
              )
              ids.push(handle.id)
            }
            return { submitted: ids.length, ids }
          })
      })
    }

    // ---- handlers beside the defaults
    const register = <M extends EventLoop.Match>(
      explanation: string,
      match: M,
      handle: (event: EventLoop.EventFor<M>) => Effect.Effect<void>
    ): Effect.Effect<
      void,
      EventLoopError.TooManyHandlers | EventLoopError.HandlerConflict | AgendaError.InvalidOptions | EventLoopError.LoopStopped,
      Scope.Scope
    > =>
      Effect.asVoid(loop.register({ explanation, match, handle }))
    yield* register("daemon: D prints a dump on stdout", { _tag: "Command", byte: "D" }, () => printDump("command D"))
    yield* register("daemon: SIGUSR1 prints a dump on stdout", { _tag: "Signal", signal: "SIGUSR1" }, () => printDump("SIGUSR1"))
    yield* register("daemon: SIGUSR2 prints a status line now", { _tag: "Signal", signal: "SIGUSR2" }, () => printStatus)
    yield* register(
      "daemon: SIGHUP reopens the control FIFOs, recreating removed ones",
      { _tag: "Signal", signal: "SIGHUP" },
      () =>
        Effect.asVoid(FiberSet.run(
          fibers,
          Effect.suspend(() => control === undefined ? Effect.succeed([]) : control.reopen).pipe(
            Effect.matchCauseEffect({
              onSuccess: (recreated) =>
                Effect.sync(() => output.emit({ event: "reopened", cmd: files.cmd, out: files.out, recreated })),
              onFailure: (cause) => Effect.logError("SIGHUP: reopening the control FIFOs failed", cause)
            })
          )
        ))
    )
    // The loop's defaults decide; these run after them and report it.
    yield* register("daemon: announce a quit on SIGINT, an exit on a second one", { _tag: "Signal", signal: "SIGINT" }, () =>
      stopping === undefined ? announce("quit", "SIGINT") : announce("exit", "second SIGINT"))
    yield* register("daemon: announce a quit on SIGTERM", { _tag: "Signal", signal: "SIGTERM" }, () =>
      announce("quit", "SIGTERM"))
    yield* register("daemon: announce a quit on command Q", { _tag: "Command", byte: "Q" }, () =>
      announce("quit", "command Q"))
    yield* register("daemon: announce an exit on command X", { _tag: "Command", byte: "X" }, () =>
      announce("exit", "command X"))

    // ---- timers
    if (config.rate > 0) {
      yield* loop.timeouts.every("10 millis", workload.tick, { label: "workload: submit the synthetic tasklets due" })
    }
    yield* loop.timeouts.every(Duration.millis(config.statusIntervalMs), printStatus, { label: "daemon: status line" })
    if (config.duration !== undefined) {
      yield* loop.timeouts.after(
        Duration.millis(config.duration * 1000),
        Effect.andThen(announce("quit", "duration"), loop.quit),
        { label: `daemon: quit after ${config.duration}s` }
      )
    }

    control = yield* Control.make({ files, methods }).pipe(
      Effect.provideService(EventLoop.EventLoop, loop),
      Effect.provideService(Platform.Platform, platform)
    )

    // The first status line then has rates too.
    previous = Output.sample(performance.now(), yield* agenda.stats, yield* loop.stats)
    output.emit({
      event: "ready",
      pid: process.pid,
      platform: chosen.name,
      platformReason: chosen.reason,
      cmd: files.cmd,
      out: files.out,
      runtimeDir: files.dir,
      workers: config.workers,
      rate: config.rate,
      mix: config.mix,
      duration: config.duration ?? null
    })

    const stopped = yield* loop.awaitStop
    output.end()
    const cause = stopping?.cause ?? stopped.cause
    const exitCode = stopped.reason === "exit" && cause === "second SIGINT" ? ExitCode.Interrupted : ExitCode.Ok
    output.emit({
      event: "stopped",
      reason: stopped.reason,
      cause,
      exitCode,
      uptimeMs: uptimeMs(),
      stats: finalStats(stopped.agenda, stopped.loop, controlStats(), workload.stats(), output.stats())
    })
    return exitCode
  })).pipe(
    // The loop (forked inside) inherits High, so it runs before the workers
    // whenever both are runnable; all fibers share one priority scheduler.
    PriorityScheduler.withPriority("High"),
    Effect.provide(PriorityScheduler.layer()),
    Effect.provide(Logger.layer([Output.logger(output)]))
  )
