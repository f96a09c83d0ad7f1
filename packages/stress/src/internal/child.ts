/**
 * Child processes running this package's CLI (`--child ...`): for parts of
 * a scenario that need a fresh process (exit on its own, `--expose-gc`).
 *
 * From the built package the child is `node dist/bin/stress.js`; from the
 * sources (under vitest) it is the same CLI run through Vite's module runner
 * with this package's test aliases (test/helpers/fromSources.mjs), so the
 * tests need no build.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type Outcome, Report } from "../Scenario.js"

const here = fileURLToPath(import.meta.url)
const packageDir = path.resolve(path.dirname(here), "..", "..")
const fromSources = here.endsWith(".ts")

/** The command line of a child running the CLI with `args`. */
export const command = (
  args: ReadonlyArray<string>,
  options: { readonly exposeGc?: boolean } = {}
): { readonly file: string; readonly args: ReadonlyArray<string> } => {
  const node = options.exposeGc === true ? ["--expose-gc"] : []
  if (!fromSources) return { file: process.execPath, args: [...node, path.join(packageDir, "dist", "bin", "stress.js"), ...args] }
  const launcher = path.join(packageDir, "test", "helpers", "fromSources.mjs")
  const config = path.join(packageDir, "vitest.config.ts")
  return {
    file: process.execPath,
    args: [...node, launcher, config, path.join(packageDir, "src", "bin", "stress.ts"), ...args]
  }
}

export interface Finished {
  readonly lines: ReadonlyArray<string>
  readonly stderr: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** The child did not exit by itself within the timeout and was killed. */
  readonly killed: boolean
}

/**
 * Runs a child to its end. `onLine` sees each stdout line as it comes (with
 * the process, e.g. to signal it); after `timeout` ms the child is killed
 * with SIGKILL and reported as `killed`.
 */
export const run = (
  args: ReadonlyArray<string>,
  options: {
    readonly exposeGc?: boolean
    readonly timeout: number
    readonly onLine?: (line: string, child: ChildProcess) => void
  }
): Effect.Effect<Finished> =>
  Effect.callback<Finished>((resume) => {
    const cmd = command(args, options)
    const child = spawn(cmd.file, cmd.args, { stdio: ["ignore", "pipe", "pipe"] })
    const lines: Array<string> = []
    let pending = ""
    let stderr = ""
    let killed = false
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (chunk: string) => {
      pending += chunk
      let nl = pending.indexOf("\n")
      while (nl >= 0) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        lines.push(line)
        options.onLine?.(line, child)
        nl = pending.indexOf("\n")
      }
    })
    child.stderr!.setEncoding("utf8")
    child.stderr!.on("data", (chunk: string) => {
      // Keep the end: that is where a crash says why.
      stderr = (stderr + chunk).slice(-4000)
    })
    const timer = setTimeout(() => {
      killed = true
      child.kill("SIGKILL")
    }, options.timeout)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (pending.length > 0) lines.push(pending)
      resume(Effect.succeed({ lines, stderr, code, signal, killed }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

/**
 * Runs a whole scenario in a child process (`--child scenario`) and returns
 * the child's report as an outcome of this process, e.g. to get
 * `--expose-gc` when this process lacks it.
 */
export const scenarioInChild = (
  name: string,
  size: string,
  options: { readonly exposeGc?: boolean; readonly timeout: number }
): Effect.Effect<Outcome> =>
  Effect.map(run(["--child", "scenario", "--name", name, "--size", size], options), (finished): Outcome => {
    const last = [...finished.lines].reverse().find((line) => line.startsWith("{"))
    const report = last === undefined ? undefined : Option.getOrUndefined(decodeReport(last))
    if (report === undefined || finished.code !== 0) {
      return {
        sent: 0,
        arrived: 0,
        lost: 0,
        leakedHandles: finished.killed ? 1 : 0,
        violations: [
          `the child process ended with code ${finished.code}, signal ${finished.signal}` +
          `${finished.killed ? " (killed after the timeout)" : ""} and no report: ${finished.stderr.slice(-600)}`
        ]
      }
    }
    return {
      sent: report.sent,
      arrived: report.arrived,
      lost: report.lost,
      leakedFds: report.leakedFds,
      leakedHandles: report.leakedHandles,
      violations: report.violations,
      figures: { ...report.figures, ranIn: "a child process" }
    }
  })

const decodeReport = Schema.decodeUnknownOption(Schema.fromJsonString(Report))
