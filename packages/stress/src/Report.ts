/**
 * Printing scenario reports: a plain-text table for the terminal, a Markdown
 * table for docs/RELIABILITY.md, and the verdict of a whole run.
 *
 * @since 0.1.0
 */
import type { Report } from "./Scenario.js"

const number = (n: number): string => Number.isInteger(n) ? n.toLocaleString("en-US") : n.toFixed(2)

const figure = (value: number | string): string => typeof value === "number" ? number(value) : value

const columns = ["scenario", "sent", "arrived", "lost", "leaked fds", "leaked handles", "violations", "time"] as const

const row = (report: Report): Array<string> => [
  report.scenario,
  number(report.sent),
  number(report.arrived),
  number(report.lost),
  number(report.leakedFds),
  number(report.leakedHandles),
  number(report.violations.length),
  `${(report.millis / 1000).toFixed(1)} s`
]

/**
 * The reports as an aligned text table, one row per scenario.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Report, Scenarios } from "@refpersys/stress"
 *
 * const program = Effect.map(
 *   Effect.forEach(Scenarios.all, (scenario) => scenario.run("small")),
 *   (reports) => console.log(Report.table(reports))
 * )
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const table = (reports: ReadonlyArray<Report>): string => {
  const rows = [Array.from(columns), ...reports.map(row)]
  const widths = columns.map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  const line = (r: ReadonlyArray<string>) =>
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ")
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n")
}

/**
 * The figures and violations of one report, one per line, for the terminal.
 *
 * @since 0.1.0
 * @category formatting
 */
export const details = (report: Report): string => {
  const lines = [`${report.scenario} (${report.size}): ${report.clean ? "clean" : "NOT CLEAN"}`]
  for (const [key, value] of Object.entries(report.figures)) lines.push(`  ${key}: ${figure(value)}`)
  for (const violation of report.violations) lines.push(`  ✗ ${violation}`)
  return lines.join("\n")
}

/**
 * The reports as a Markdown table followed by each scenario's figures.
 *
 * @since 0.1.0
 * @category formatting
 */
export const markdown = (reports: ReadonlyArray<Report>): string => {
  const head = `| ${columns.join(" | ")} |\n|${columns.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`
  const body = reports.map((r) => `| ${row(r).join(" | ")} |`).join("\n")
  const figures = reports.map((r) =>
    `- **${r.scenario}**: ${Object.entries(r.figures).map(([k, v]) => `${k} ${figure(v)}`).join(", ")}`
  )
  return `${head}\n${body}\n\n${figures.join("\n")}`
}

/**
 * Whether every report is clean (nothing lost or leaked, no violation): the
 * CLI exits with 1 otherwise.
 *
 * @since 0.1.0
 * @category verdict
 */
export const allClean = (reports: ReadonlyArray<Report>): boolean => reports.every((r) => r.clean)
