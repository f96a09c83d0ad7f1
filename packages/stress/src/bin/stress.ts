#!/usr/bin/env node
/**
 * `npm run stress`: runs every reliability scenario at full size with
 * progress on stderr, prints a table of what was sent, what arrived and what
 * was lost, and exits with 1 if anything was lost or leaked.
 *
 * Options: `--size small|full` (default full), `--only a,b` (scenario
 * names), `--json` (one report per line on stdout instead of the table),
 * `--markdown` (the table and figures as Markdown, for docs/RELIABILITY.md).
 * `--child <name>` runs one piece of a scenario in this process on behalf of
 * a parent (see the shutdown and memory scenarios).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Report from "../Report.js"
import * as Scenario from "../Scenario.js"
import * as Scenarios from "../scenarios/index.js"
import * as ShutdownUnderLoad from "../scenarios/shutdownUnderLoad.js"

const args = process.argv.slice(2)
const option = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}

const progress = Scenario.Progress.of({
  report: (scenario, message) => process.stderr.write(`  [${scenario}] ${message}\n`)
})

const main = Effect.gen(function*() {
  const size = Schema.decodeUnknownSync(Scenario.Size)(option("size") ?? "full")
  const only = option("only")?.split(",")
  const json = args.includes("--json")
  const selected = only === undefined ? Scenarios.all : Scenarios.all.filter((s) => only.includes(s.name))
  if (only !== undefined && selected.length !== only.length) {
    const known = Scenarios.all.map((s) => s.name).join(", ")
    return yield* Effect.die(new Error(`unknown scenario in --only ${only.join(",")}; known: ${known}`))
  }
  const reports: Array<Scenario.Report> = []
  for (const [i, scenario] of selected.entries()) {
    process.stderr.write(`[${i + 1}/${selected.length}] ${scenario.name} (${size}): ${scenario.proves}\n`)
    const report = yield* scenario.run(size)
    reports.push(report)
    if (json) process.stdout.write(`${JSON.stringify(Schema.encodeSync(Scenario.Report)(report))}\n`)
    else process.stderr.write(`${Report.details(report)}\n`)
  }
  if (args.includes("--markdown")) {
    process.stderr.write(`\n${Report.table(reports)}\n`)
    process.stdout.write(`\n${Report.markdown(reports)}\n`)
  } else if (!json) process.stdout.write(`\n${Report.table(reports)}\n`)
  const clean = Report.allClean(reports)
  if (!json) process.stdout.write(clean ? "\nnothing lost, nothing leaked\n" : "\nSOMETHING WAS LOST OR LEAKED (see above)\n")
  process.exitCode = clean ? 0 : 1
}).pipe(Effect.provideService(Scenario.Progress, progress))

// A piece of a scenario run on behalf of a parent process; it prints its
// result as the last line of stdout.
const child = (mode: string) =>
  Effect.gen(function*() {
    if (mode === "shutdown") return yield* ShutdownUnderLoad.childRun(Number(option("seed")), option("trigger") ?? "")
    if (mode !== "scenario") return yield* Effect.die(new Error(`unknown --child mode ${mode}`))
    const name = option("name") ?? ""
    const scenario = Scenarios.byName(name)
    if (scenario === undefined) return yield* Effect.die(new Error(`unknown scenario ${name}`))
    const report = yield* scenario.run(Schema.decodeUnknownSync(Scenario.Size)(option("size") ?? "small"))
    process.stdout.write(`${JSON.stringify(Schema.encodeSync(Scenario.Report)(report))}\n`)
  }).pipe(Effect.provideService(Scenario.Progress, progress))

const mode = option("child")
Effect.runPromise(mode === undefined ? main : child(mode)).catch((error) => {
  process.stderr.write(`stress: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exitCode = 2
})
