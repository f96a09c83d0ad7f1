import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { Effect } from "effect"
import type { Report } from "../src/Scenario.js"
import * as Scenarios from "../src/scenarios/index.js"

const figure = (report: Report, name: string) => report.figures[name]

/** What each scenario must have shown besides "nothing lost, nothing leaked". */
const shown: Record<string, (report: Report) => void> = {
  "signal-storm": (r) => {
    expect(figure(r, "realtimeCounted")).toBe(figure(r, "realtimeSent"))
    for (const name of ["SIGUSR1", "SIGUSR2", "SIGHUP", "SIGCHLD"]) expect(figure(r, `${name}Arrived`)).toBeGreaterThan(0)
    expect(figure(r, "portableSigchldArrived")).toBeGreaterThan(0)
  },
  "command-fuzz": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "unknownCounted")).toBeGreaterThan(0)
    // The long burst outran the self-pipe: refused with a typed error, then retried.
    expect(figure(r, "pipeFullRefusals")).toBeGreaterThan(0)
    expect(figure(r, "linesTooLong")).toBeGreaterThan(0)
  },
  "handler-garbage": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "inlineFailuresCounted")).toBe((figure(r, "rounds") as number) * 6)
    expect(figure(r, "invalidPostsRefused")).toBeGreaterThan(0)
    expect(figure(r, "suppressedWarnings")).toBeGreaterThan(0)
    expect(figure(r, "summaryLines")).toBeGreaterThan(0)
  },
  "fd-faults": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "fd closed in its handler: error")).toBe(figure(r, "rounds"))
  },
  "tasklet-faults": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "outcomesNotAsExpected")).toBe(0)
  },
  "memory-pressure": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(Math.abs(figure(r, "afterDrainVsBaselinePercent") as number)).toBeLessThanOrEqual(10)
  },
  "shutdown-under-load": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "childrenThatExitedByThemselves")).toBe(figure(r, "childProcessRuns"))
    expect(figure(r, "mode quit")).toBeGreaterThan(0)
    expect(figure(r, "mode exit")).toBeGreaterThan(0)
  },
  "self-stop": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "reportsSeen")).toBe(figure(r, "rounds"))
    for (const stop of ["quit", "quit-timeout", "exit", "forked-quit"]) expect(figure(r, `stops ${stop}`)).toBeGreaterThan(0)
    expect(figure(r, "gcFromTasklets")).toBeGreaterThan(0)
  },
  "stuck-collector": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "gcTimeouts")).toBeGreaterThan(0)
  },
  "properties": (r) => {
    expect(r.arrived).toBe(r.sent)
  },
  "hostile-runtime-dir": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "refused")).toBe(figure(r, "attempts"))
    expect(figure(r, "daemonAttempts")).toBeGreaterThan(0)
    expect(figure(r, "clientAttempts")).toBeGreaterThan(0)
  },
  "output-epipe": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "childrenThatExitedByThemselves")).toBe(figure(r, "runs"))
    for (const lost of ["stdout", "stderr", "rps.out"]) expect(figure(r, `lost ${lost}`)).toBeGreaterThan(0)
  },
  "thread-codec-faults": (r) => {
    expect(r.arrived).toBe(r.sent)
    expect(figure(r, "outcomesNotAsExpected")).toBe(0)
    expect(figure(r, "threadCrashes")).toBe(0)
    expect(figure(r, "codecErrors")).toBeGreaterThan(0)
    expect(figure(r, "innocent")).toBeGreaterThan(figure(r, "codecErrors") as number)
  }
}

describe("reliability scenarios (small size)", () => {
  it("every scenario has its own checks here", () => {
    expect(Scenarios.all.map((s) => s.name).sort()).toEqual(Object.keys(shown).sort())
  })

  for (const scenario of Scenarios.all) {
    it.live(`${scenario.name}: ${scenario.proves}`, () =>
      Effect.gen(function*() {
        const report = yield* scenario.run("small")
        expect(report.violations).toEqual([])
        expect(report.lost).toBe(0)
        expect(report.leakedFds).toBe(0)
        expect(report.leakedHandles).toBe(0)
        expect(report.sent).toBeGreaterThan(0)
        expect(report.clean).toBe(true)
        shown[scenario.name](report)
      }), 60_000)
  }
})
