// End to end: a GC barrier requested (command byte G) while one long tasklet
// holds a worker. The agenda's gcTimeout bounds the barrier, so the other
// workers resume while that tasklet still runs, instead of all work stopping
// until it ends.
import { it } from "@effect/vitest"
import { afterAll, afterEach, beforeAll, describe, expect } from "vitest"
import { Effect, Schema } from "effect"
import * as Client from "../src/Client.js"
import * as Output from "../src/Output.js"
import { ctlBin, daemonBin, killAll, removeTempDirs, requireBuilt, run, start, tempDir, writeCmd } from "./helpers/child.js"

beforeAll(() => requireBuilt(daemonBin, ctlBin))
afterEach(killAll)
afterAll(removeTempDirs)

const decodeLine = Schema.decodeUnknownSync(Output.Line)

const status = (where: (line: Output.Status) => boolean) => (value: unknown): Output.Status | undefined => {
  if (typeof value !== "object" || value === null || (value as { event?: unknown }).event !== "status") return undefined
  const line = decodeLine(value) as Output.Status
  return where(line) ? line : undefined
}

const event = (kind: string) => (value: unknown): any =>
  typeof value === "object" && value !== null && (value as { event?: unknown }).event === kind ? value : undefined

const dump = (dir: string) =>
  Effect.runPromise(Client.call(dir, "dump", { timeout: "15 seconds" })) as Promise<Output.Dump>

/** Whether a worker runs the tasklet `id`, per a fresh dump. */
const running = async (dir: string, id: number) => (await dump(dir)).workers.some((w) => w.current?.id === id)

/** Polls `check` (each poll is a round trip to the daemon), at most `tries` times. */
const until = async (what: string, check: () => Promise<boolean>, tries = 200) => {
  for (let i = 0; i < tries; i++) if (await check()) return
  throw new Error(`never held: ${what}`)
}

const SLEEP_MS = 20_000
const STALLED_QUEUE = 100

const queued = (s: Output.Status) => s.queued.High + s.queued.Normal + s.queued.Low

const lastStatusUptime = (lines: ReadonlyArray<string>): number => {
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const value = JSON.parse(lines[i])
      if (value.event === "status") return value.uptimeMs
    } catch {
      // not JSON: skip
    }
  }
  return 0
}

describe("rps-daemon GC barrier", () => {
  it("a long tasklet and G: the barrier gives up within gcTimeout and work goes on while the tasklet still sleeps", async () => {
    const dir = tempDir()
    const daemon = start(daemonBin, ["--json", "--runtime-dir", dir, "--rate", "200", "--status-interval", "100"])
    await daemon.waitFor("the ready line", event("ready"))
    await daemon.waitFor("a status line with work done", status((s) => s.ended > 0))

    const submitted = await run(ctlBin, ["submit", "--runtime-dir", dir, "--sleep-ms", String(SLEEP_MS), "--json"])
    expect(submitted.code).toBe(0)
    const longId = (JSON.parse(submitted.stdout) as { ids: Array<number> }).ids[0]
    await until("the long tasklet runs", () => running(dir, longId))

    const before = lastStatusUptime(daemon.lines)
    writeCmd(dir, "G")
    // The barrier forms: no worker takes a tasklet (idle ones stay idle,
    // busy ones park), the long one keeps its worker, and the workload's
    // submissions pile up (200 a second; without a barrier the queues stay
    // near empty).
    const stalled = await daemon.waitFor(
      "a status line with work stalled by the barrier",
      status((s) => s.uptimeMs > before && queued(s) >= STALLED_QUEUE)
    )
    // Within the bound (5 s by default) the barrier is given up and the
    // workers run tasklets again, long before the sleep ends.
    const resumed = await daemon.waitFor(
      "a status line with the workers back at work",
      status((s) => s.uptimeMs > stalled.uptimeMs && s.ended > stalled.ended + STALLED_QUEUE),
      SLEEP_MS - 5_000
    )
    expect(resumed.ended).toBeGreaterThan(stalled.ended)
    expect(await running(dir, longId)).toBe(true)

    daemon.kill("SIGTERM")
    const stopped = await daemon.waitFor("the stopped line", event("stopped"), 30_000)
    expect(await daemon.exited).toEqual({ code: 0, signal: null })
    expect(stopped.stats.balanced).toBe(true)
    expect(stopped.stats.queued + stopped.stats.running).toBe(0)
  }, 60_000)
})
