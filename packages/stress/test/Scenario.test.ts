import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Scenario from "../src/Scenario.js"
import * as Scenarios from "../src/scenarios/index.js"

describe("Scenario", () => {
  it.live("make: the body's counts and figures become the report, with the log counts and the size", () =>
    Effect.gen(function*() {
      const echo = Scenario.make({
        name: "echo",
        proves: "what is sent arrives",
        body: (size) =>
          Effect.as(Effect.logWarning("one warning"), {
            sent: size === "full" ? 10 : 1,
            arrived: size === "full" ? 10 : 1,
            lost: 0,
            figures: { size }
          })
      })
      const report = yield* echo.run("full")
      expect(report).toMatchObject({ scenario: "echo", size: "full", sent: 10, arrived: 10, lost: 0, violations: [] })
      expect(report.figures).toEqual({ size: "full", logWarnings: 1, logErrors: 0 })
      expect(report.clean).toBe(true)
    }))

  it.live("make: a body that fails or dies yields a report with the reason as a violation", () =>
    Effect.gen(function*() {
      const dies = Scenario.make({ name: "dies", proves: "nothing", body: () => Effect.die(new Error("the body broke")) })
      const report = yield* dies.run("small")
      expect(report.clean).toBe(false)
      expect(report.violations.join(" ")).toContain("the body broke")
    }))

  it.live("make: an fd the body leaves open is a leak, named in a violation", () =>
    Effect.gen(function*() {
      let fd = -1
      const leaky = Scenario.make({
        name: "leaky",
        proves: "nothing",
        body: () =>
          Effect.sync(() => {
            fd = fs.openSync(os.devNull, "r")
            return { sent: 1, arrived: 1, lost: 0 }
          })
      })
      const report = yield* leaky.run("small")
      fs.closeSync(fd)
      expect(report.leakedFds).toBe(1)
      expect(report.violations.join(" ")).toContain(os.devNull)
    }))

  it.live("progress reaches the Progress in context, and goes nowhere without one", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      yield* Scenario.progress("s", "half way").pipe(
        Effect.provideService(Scenario.Progress, { report: (scenario, message) => void seen.push(`${scenario}: ${message}`) })
      )
      yield* Scenario.progress("s", "unseen")
      expect(seen).toEqual(["s: half way"])
    }))

  it("scenarios are found by name, and names are unique", () => {
    for (const s of Scenarios.all) expect(Scenarios.byName(s.name)).toBe(s)
    expect(Scenarios.byName("no-such-scenario")).toBeUndefined()
    expect(new Set(Scenarios.all.map((s) => s.name)).size).toBe(Scenarios.all.length)
  })
})
