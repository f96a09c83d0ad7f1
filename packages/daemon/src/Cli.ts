/**
 * The command lines of `rps-daemon` (`npm start`) and `rps-ctl`
 * (`npm run ctl`), built with `effect/cli`. Both succeed with the process
 * exit code: 2 for bad flags (after the parser printed why on stderr), 77
 * (`RuntimeDir.untrustedExitCode`) when an untrusted runtime directory or
 * FIFO was refused, 1 when the work failed otherwise, 0 otherwise; the daemon
 * adds 130 for a second `SIGINT`.
 *
 * @since 0.1.0
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Client from "./Client.js"
import * as Daemon from "./Daemon.js"
import { processStreams } from "./internal/streams.js"
import * as Output from "./Output.js"
import * as RuntimeDir from "./RuntimeDir.js"
import * as Workload from "./Workload.js"

const VERSION = "0.1.0"

/**
 * What the command lines need from the platform: `NodeServices.layer` of
 * `@effect/platform-node` provides it.
 *
 * @since 0.1.0
 * @category models
 */
export type Environment = Command.Environment

const runtimeDir = Flag.String("runtime-dir").pipe(
  Flag.withDescription("Directory of the control FIFOs (rps.cmd, rps.out) and the pid file rps.pid (default $XDG_RUNTIME_DIR/refpersys, else <tmpdir>/refpersys-<uid>); created with mode 0700, and an existing one is used only when it is yours with no group or other bits (exit 77 otherwise)"),
  Flag.withDefault(RuntimeDir.defaultDir())
)

const json = Flag.Boolean("json").pipe(
  Flag.withDescription("Print JSON lines on stdout instead of text"),
  Flag.withDefault(false)
)

/**
 * The daemon's flags.
 *
 * @since 0.1.0
 * @category daemon
 */
export const daemonOptions = {
  workers: Flag.Int("workers").pipe(
    Flag.withDescription("Agenda workers, 1 to 1024 (default 4)"),
    Flag.filter((n) => n >= 1 && n <= 1024, (n) => `--workers must be between 1 and 1024, got ${n}`),
    Flag.withDefault(4)
  ),
  rate: Flag.Finite("rate").pipe(
    Flag.withDescription("Synthetic tasklets per second, 0 for none (default 2000)"),
    Flag.filter(
      (n) => Number.isFinite(n) && n >= 0 && n <= 1_000_000,
      (n) => `--rate must be between 0 and 1000000 tasklets per second, got ${n}`
    ),
    Flag.withDefault(2000)
  ),
  mix: Flag.String("mix").pipe(
    Flag.withDescription("Weights High:Normal:Low of the workload's tasklets (default 1:3:6)"),
    Flag.filterMap(
      (text) => Result.getSuccess(Workload.parseMix(text)),
      (text) => Result.match(Workload.parseMix(text), { onFailure: (message) => message, onSuccess: () => "" })
    ),
    Flag.withDefault(Workload.defaultMix)
  ),
  duration: Flag.Finite("duration").pipe(
    Flag.withDescription("Seconds to run before quitting by itself (default: until a signal or a command)"),
    Flag.filter(
      (s) => Number.isFinite(s) && s > 0,
      (s) => `--duration must be a positive number of seconds, got ${s}`
    ),
    Flag.optional,
    Flag.map(Option.getOrUndefined)
  ),
  runtimeDir,
  json,
  platform: Flag.Literals("platform", ["auto", "native", "portable"]).pipe(
    Flag.withDescription("Platform layer: auto (native when its addon is built), native, or portable (default auto)"),
    Flag.withDefault("auto" as const)
  ),
  statusInterval: Flag.Int("status-interval").pipe(
    Flag.withDescription("Milliseconds between status lines (default 500 on a terminal, else 1000)"),
    Flag.filter((n) => n >= 50, (n) => `--status-interval must be at least 50 ms, got ${n}`),
    Flag.optional,
    Flag.map(Option.getOrUndefined)
  )
}

/**
 * A bad command line prints its errors on stderr, without the help text on
 * stdout: stdout carries only what the program itself prints (JSON lines
 * with `--json`); `--help` still prints the help on stdout.
 */
const errorFormatter = CliOutput.defaultFormatter({ colors: false })
const presenter: CliOutput.Presenter = {
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(errorFormatter.formatErrors(event.errors))
      : CliOutput.defaultPresenter.present(event)
}

/** A refusal of an untrusted runtime directory or FIFO, by the daemon or the client. */
const isUntrusted = (error: unknown): boolean =>
  (error instanceof RuntimeDir.RuntimeDirError || error instanceof Client.ClientError) && error.reason === "Untrusted"

const exitCodeOf = <E, R>(
  name: string,
  run: (code: { value: number }) => Effect.Effect<void, E | CliError.CliError, R>
): Effect.Effect<number, never, R> =>
  Effect.suspend(() => {
    const code = { value: 0 }
    return run(code).pipe(
      Effect.provideService(CliOutput.Presenter, presenter),
      Effect.map(() => code.value),
      Effect.catch((error) =>
        CliError.isCliError(error)
          // The command line parser has printed the reason.
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
 * import { NodeServices } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { Cli } from "@refpersys/daemon"
 *
 * const code = Cli.daemon(["node", "rps-daemon", "--duration", "2", "--json"]).pipe(
 *   Effect.provide(NodeServices.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category daemon
 */
export const daemon = (argv: ReadonlyArray<string>): Effect.Effect<number, never, Environment> =>
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
    return Command.runWith(command, { version: VERSION })(argv.slice(2))
  })

// ---- the control client --------------------------------------------------------

const ctlShared = {
  runtimeDir,
  json: Flag.Boolean("json").pipe(
    Flag.withDescription("Print the reply's result as one JSON line"),
    Flag.withDefault(false)
  ),
  timeout: Flag.Finite("timeout").pipe(
    Flag.withDescription("Seconds to wait for the reply (default 5)"),
    Flag.filter(
      (s) => Number.isFinite(s) && s > 0,
      (s) => `--timeout must be a positive number of seconds, got ${s}`
    ),
    Flag.withDefault(5)
  )
}

const print = (lines: ReadonlyArray<string>) =>
  Effect.sync(() => processStreams().stdout.write(lines.map((l) => l + "\n").join("")))

const render = (method: string, result: unknown): Effect.Effect<ReadonlyArray<string>, unknown> => {
  switch (method) {
    case "stats":
      return Effect.map(Schema.decodeUnknownEffect(Output.StatsResult)(result), Output.renderStats)
    case "dump":
      return Effect.map(Schema.decodeUnknownEffect(Output.Dump)(result), Output.renderDump)
    case "gc":
      return Effect.map(Schema.decodeUnknownEffect(Output.GcResult)(result), (r) => [
        `GC barrier done in ${r.durationMs.toFixed(2)} ms (cycle ${r.gcCycles})` +
        (r.collected ? ", heap collected" : "; start the daemon with node --expose-gc to also collect the heap")
      ])
    case "quit":
    case "exit":
      return Effect.map(Schema.decodeUnknownEffect(Output.StopResult)(result), (r) => [
        r.stopping === "quit"
          ? `daemon pid ${r.pid} is quitting (draining its agenda)`
          : `daemon pid ${r.pid} is exiting (interrupting its tasklets)`
      ])
    case "submit":
      return Effect.map(Schema.decodeUnknownEffect(Output.SubmitResult)(result), (r) => [
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
  priority: Flag.Literals("priority", ["High", "Normal", "Low"]).pipe(Flag.withDefault("Normal" as const)),
  count: Flag.Int("count").pipe(Flag.withDescription("Tasklets to submit (1 to 1000)"), Flag.withDefault(1)),
  spinMicros: Flag.Finite("spin-micros").pipe(Flag.withDescription("Busy time of each tasklet"), Flag.withDefault(0)),
  sleepMs: Flag.Finite("sleep-ms").pipe(Flag.withDescription("Sleep of each tasklet (holds a worker)"), Flag.withDefault(0))
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
    // Shows the help, and the exit code says the command line was bad.
    Effect.fail(new CliError.ShowHelp({ commandPath: ["rps-ctl"], errors: [] }))
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
 * import { NodeServices } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { Cli } from "@refpersys/daemon"
 *
 * const code = Cli.ctl(["node", "rps-ctl", "stats", "--json"]).pipe(Effect.provide(NodeServices.layer))
 * ```
 *
 * @since 0.1.0
 * @category client
 */
export const ctl = (argv: ReadonlyArray<string>): Effect.Effect<number, never, Environment> =>
  exitCodeOf("rps-ctl", () => {
    processStreams()
    return Command.runWith(ctlCommand, { version: VERSION })(argv.slice(2))
  })
