import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import * as Report from "../src/Report.js"
import { Report as ScenarioReport } from "../src/Scenario.js"

const report = (overrides: Partial<ConstructorParameters<typeof ScenarioReport>[0]> = {}) =>
  new ScenarioReport({
    scenario: "echo",
    size: "small",
    sent: 12_345,
    arrived: 12_345,
    lost: 0,
    leakedFds: 0,
    leakedHandles: 0,
    violations: [],
    figures: { bursts: 3, note: "fine" },
    millis: 1_500,
    ...overrides
  })

describe("Report", () => {
  it("a report is clean only with nothing lost, nothing leaked and no violation", () => {
    expect(report().clean).toBe(true)
    expect(report({ lost: 1 }).clean).toBe(false)
    expect(report({ leakedFds: 1 }).clean).toBe(false)
    expect(report({ leakedHandles: 1 }).clean).toBe(false)
    expect(report({ violations: ["x"] }).clean).toBe(false)
    expect(Report.allClean([report(), report()])).toBe(true)
    expect(Report.allClean([report(), report({ lost: 2 })])).toBe(false)
  })

  it("table: a header, a rule and one aligned row per scenario", () => {
    const lines = Report.table([report(), report({ scenario: "longer-name", lost: 7, millis: 42_000 })]).split("\n")
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(/^scenario\s+sent\s+arrived\s+lost\s+leaked fds\s+leaked handles\s+violations\s+time$/)
    expect(lines[1]).toMatch(/^-+( +-+)+$/)
    expect(lines[2]).toContain("12,345")
    expect(lines[3]).toMatch(/^longer-name .* 7 .* 42\.0 s$/)
    expect(new Set(lines.map((l) => l.length)).size).toBe(1)
  })

  it("details: the verdict, each figure and each violation", () => {
    expect(Report.details(report())).toBe("echo (small): clean\n  bursts: 3\n  note: fine")
    expect(Report.details(report({ violations: ["lost one"] }))).toContain("NOT CLEAN")
    expect(Report.details(report({ violations: ["lost one"] }))).toContain("✗ lost one")
  })

  it("markdown: a table row per scenario, then its figures", () => {
    const md = Report.markdown([report()])
    expect(md).toContain("| scenario | sent | arrived | lost |")
    expect(md).toContain("| echo | 12,345 | 12,345 | 0 | 0 | 0 | 0 | 1.5 s |")
    expect(md).toContain("- **echo**: bursts 3, note fine")
  })
})
