/**
 * The command lines of `rps-daemon` (`npm start`) and `rps-ctl`
 * (`npm run ctl`), built with `@effect/cli`. Both succeed with the process
 * exit code: 2 for bad flags (after `@effect/cli` printed why), 77
 * (`RuntimeDir.untrustedExitCode`) when an untrusted runtime directory or
 * FIFO was refused, 1 when the work failed otherwise, 0 otherwise; the daemon
 * adds 130 for a second `SIGINT`.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as CliApp from "@effect/cli/CliApp"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Client from "./Client.js"
import * as Daemon from "./Daemon.js"
import { processStreams } from "./internal/streams.js"
import * as Output from "./Output.js"
import * as RuntimeDir from "./RuntimeDir.js"
import * as Workload from "./Workload.js"

const VERSION = "0.1.0"

const invalid = (message: string) => ValidationError.invalidValue(HelpDoc.p(message))

const runtimeDir = Options.text("runtime-dir").pipe(
  Options.withDescription("Directory of the control FIFOs (rps.cmd, rps.out) and the pid file rps.pid (default $XDG_RUNTIME_DIR/refpersys, else <tmpdir>/refpersys-<uid>); created with mode 0700, and an existing one is used only when it is yours with no group or other bits (exit 77 otherwise)"),
  Options.withDefault(RuntimeDir.defaultDir())
)

const json = Options.boolean("json").pipe(
  Options.withDescription("Print JSON lines on stdout instead of text")
)

/**
 * The daemon's flags.
 *
 * @since 0.1.0
 * @category daemon
 */
export const daemonOptions = {
  workers: Options.integer("workers").pipe(
    Options.withDescription("Agenda workers, 1 to 1024 (default 4)"),
    Options.withDefault(4),
    Options.mapEffect((n) =>
      n >= 1 && n <= 1024 ? Effect.succeed(n) : Effect.fail(invalid(`--workers must be between 1 and 1024, got ${n}`))
    )
  ),
  rate: Options.float("rate").pipe(
    Options.withDescription("Synthetic tasklets per second, 0 for none (default 2000)"),
    Options.withDefault(2000),
    Options.mapEffect((n) =>
      Number.isFinite(n) && n >= 0 && n <= 1_000_000
        ? Effect.succeed(n)
        : Effect.fail(invalid(`--rate must be between 0 and 1000000 tasklets per second, got ${n}`))
    )
  ),
  mix: Options.text("mix").pipe(
    Options.withDescription("Weights High:Normal:Low of the workload's tasklets (default 1:3:6)"),
    Options.withDefault("1:3:6"),
    Options.mapEffect((text) =>
      Either.match(Workload.parseMix(text), { onLeft: (message) => Effect.fail(invalid(message)), onRight: Effect.succeed })
    )
  ),
  duration: Options.float("duration").pipe(
    Options.withDescription("Seconds to run before quitting by itself (default: until a signal or a command)"),
    Options.optional,
    Options.mapEffect((seconds) =>
      Option.match(seconds, {
        onNone: () => Effect.succeed(undefined),
        onSome: (s) =>
          Number.isFinite(s) && s > 0
            ? Effect.succeed(s)
            : Effect.fail(invalid(`--duration must be a positive number of seconds, got ${s}`))
      })
    )
  ),
  runtimeDir,
  json,
  platform: Options.choice("platform", ["auto", "native", "portable"]).pipe(
    Options.withDescription("Platform layer: auto (native when its addon is built), native, or portable (default auto)"),
    Options.withDefault("auto" as const)
  ),
  statusInterval: Options.integer("status-interval").pipe(
    Options.withDescription("Milliseconds between status lines (default 500 on a terminal, else 1000)"),
    Options.optional,
    Options.mapEffect((ms) =>
      Option.match(ms, {
        onNone: () => Effect.succeed(undefined),
        onSome: (n) =>
          n >= 50 ? Effect.succeed(n) : Effect.fail(invalid(`--status-interval must be at least 50 ms, got ${n}`))
      })
    )
  )
}

/** A refusal of an untrusted runtime directory or FIFO, by the daemon or the client. */
const isUntrusted = (error: unknown): boolean =>
  (error instanceof RuntimeDir.RuntimeDirError || error instanceof Client.ClientError) && error.reason === "Untrusted"

const exitCodeOf = <E, R>(
  name: string,
  run: (code: { value: number }) => Effect.Effect<void, E | ValidationError.ValidationError, R>
): Effect.Effect<number, never, R> =>
  Effect.suspend(() => {
    const code = { value: 0 }
    return run(code).pipe(
      Effect.map(() => code.value),
      Effect.catch((error) =>
        ValidationError.isValidationError(error)
          // @effect/cli has printed the reason.
          ? Effect.sync(() => {
            processStreams().stderr.write(`${name}: bad command line; ${name} --help lists the commands and flags\n`)
            return Daemon.ExitCode.Usage
          })
          : Effect.sync(() => {
            processStreams().stderr.write(`${name}: ${error instanceof Error ? error.message : String(error)}\n`)
            return isUntrusted(error) ? RuntimeDir.untrustedExitCode : Daemon.ExitCode.Failed
          })
      )
    )
  })

/**
 * Runs the daemon's command line (`argv` as in `process.argv`) and succeeds
 * with the exit code.
 *
 * @example
 * ```ts
 * import { NodeContext } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { Cli } from "@refpersys/daemon"
 *
 * const code = Cli.daemon(["node", "rps-daemon", "--duration", "2", "--json"]).pipe(
 *   Effect.provide(NodeContext.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category daemon
 */
export const daemon = (argv: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  exitCodeOf("rps-daemon", (code) => {
    // Before anything is written: an EPIPE on either stream must never be fatal.
    processStreams()
    const command = Command.make("rps-daemon", daemonOptions, (flags) => {
      const mode: Output.Mode = flags.json ? "json" : process.stdout.isTTY === true ? "tty" : "plain"
      const output = Output.make(mode)
      const config: Daemon.Config = {
        workers: flags.workers,
        rate: flags.rate,
        mix: flags.mix,
        duration: flags.duration,
        runtimeDir: flags.runtimeDir,
        platform: flags.platform,
        statusIntervalMs: flags.statusInterval ?? (mode === "tty" ? 500 : 1000)
      }
      return Effect.map(Daemon.run(config, output), (exit) => {
        code.value = exit
      })
    }).pipe(Command.withDescription(
      "The RefPerSys runtime demo: an event loop and a 3-priority agenda under a synthetic load, " +
        "controlled through FIFOs (see docs/daemon.md)"
    ))
    return Command.run(command, { name: "rps-daemon", version: VERSION })(argv)
  })

// ---- the control client --------------------------------------------------------

const ctlShared = {
  runtimeDir,
  json: Options.boolean("json").pipe(Options.withDescription("Print the reply's result as one JSON line")),
  timeout: Options.float("timeout").pipe(
    Options.withDescription("Seconds to wait for the reply (default 5)"),
    Options.withDefault(5),
    Options.mapEffect((s) =>
      Number.isFinite(s) && s > 0 ? Effect.succeed(s) : Effect.fail(invalid(`--timeout must be a positive number of seconds, got ${s}`))
    )
  )
}

const print = (lines: ReadonlyArray<string>) =>
  Effect.sync(() => processStreams().stdout.write(lines.map((l) => l + "\n").join("")))

const render = (method: string, result: unknown): Effect.Effect<ReadonlyArray<string>, unknown> => {
  switch (method) {
    case "stats":
      return Effect.map(Schema.decodeUnknown(Output.StatsResult)(result), Output.renderStats)
    case "dump":
      return Effect.map(Schema.decodeUnknown(Output.Dump)(result), Output.renderDump)
    case "gc":
      return Effect.map(Schema.decodeUnknown(Output.GcResult)(result), (r) => [
        `GC barrier done in ${r.durationMs.toFixed(2)} ms (cycle ${r.gcCycles})` +
        (r.collected ? ", heap collected" : "; start the daemon with node --expose-gc to also collect the heap")
      ])
    case "quit":
    case "exit":
      return Effect.map(Schema.decodeUnknown(Output.StopResult)(result), (r) => [
        r.stopping === "quit"
          ? `daemon pid ${r.pid} is quitting (draining its agenda)`
          : `daemon pid ${r.pid} is exiting (interrupting its tasklets)`
      ])
    case "submit":
      return Effect.map(Schema.decodeUnknown(Output.SubmitResult)(result), (r) => [
        `submitted ${r.submitted} tasklet(s): ${r.ids.length <= 10 ? r.ids.join(", ") : `${r.ids[0]} ... ${r.ids[r.ids.length - 1]}`}`
      ])
    default:
      return Effect.succeed([JSON.stringify(result)])
  }
}

const ctlCall = (
  method: string,
  flags: { readonly runtimeDir: string; readonly json: boolean; readonly timeout: number },
  params?: Readonly<Record<string, unknown>>
) =>
  Effect.gen(function*() {
    const result = yield* Client.call(flags.runtimeDir, method, {
      timeout: flags.timeout * 1000,
      ...(params === undefined ? {} : { params })
    })
    if (flags.json) yield* print([JSON.stringify(result)])
    else yield* print(yield* render(method, result))
  })

const simple = (name: "dump" | "gc" | "quit" | "exit" | "stats", description: string) =>
  Command.make(name, ctlShared, (flags) => ctlCall(name, flags)).pipe(Command.withDescription(description))

const submit = Command.make("submit", {
  ...ctlShared,
  priority: Options.choice("priority", ["High", "Normal", "Low"]).pipe(Options.withDefault("Normal" as const)),
  count: Options.integer("count").pipe(Options.withDescription("Tasklets to submit (1 to 1000)"), Options.withDefault(1)),
  spinMicros: Options.float("spin-micros").pipe(Options.withDescription("Busy time of each tasklet"), Options.withDefault(0)),
  sleepMs: Options.float("sleep-ms").pipe(Options.withDescription("Sleep of each tasklet (holds a worker)"), Options.withDefault(0))
}, (flags) =>
  ctlCall("submit", flags, {
    priority: flags.priority,
    count: flags.count,
    spinMicros: flags.spinMicros,
    sleepMs: flags.sleepMs
  })).pipe(Command.withDescription("Submit tasklets to the daemon's agenda"))

const ctlCommand = Command.make("rps-ctl", {}, () =>
  Effect.andThen(
    Effect.sync(() => processStreams().stderr.write("rps-ctl: missing command: one of dump, gc, quit, exit, stats, submit\n")),
    Effect.fail(ValidationError.missingSubcommand(HelpDoc.p("missing command")))
  )).pipe(
    Command.withDescription("Control a running rps-daemon through its FIFOs"),
    Command.withSubcommands([
      simple("stats", "Counters, rates, queue depths and worker states"),
      simple("dump", "Everything about the runtime (the daemon also prints it)"),
      simple("gc", "Run a garbage-collection barrier on the agenda"),
      simple("quit", "Quit: drain the agenda, then stop"),
      simple("exit", "Exit now: interrupt running tasklets, drop queued ones"),
      submit
    ])
  )

/**
 * Runs the control client's command line (`argv` as in `process.argv`) and
 * succeeds with the exit code.
 *
 * @example
 * ```ts
 * import { NodeContext } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { Cli } from "@refpersys/daemon"
 *
 * const code = Cli.ctl(["node", "rps-ctl", "stats", "--json"]).pipe(Effect.provide(NodeContext.layer))
 * ```
 *
 * @since 0.1.0
 * @category client
 */
export const ctl = (argv: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  exitCodeOf("rps-ctl", () => {
    processStreams()
    return Command.run(ctlCommand, { name: "rps-ctl", version: VERSION })(argv)
  })
